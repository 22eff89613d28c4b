#!/usr/bin/env node
/**
 * The `amp-token` program. Installed, it is the bundle `dist/cli.cjs`, which the executable
 * `dist/amp-token.cjs` runs (see `scripts/bundle.mjs` and `launcher.ts`); in the workspace,
 * `pnpm amp-token <command>` runs this file with tsx. See `Cli.ts` for the commands.
 */
import * as NodeFileSystem from "@effect/platform-node/NodeFileSystem"
import * as NodePath from "@effect/platform-node/NodePath"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import * as NodeTerminal from "@effect/platform-node/NodeTerminal"
import { Cause, Effect, Exit, Layer } from "effect"
import * as Cli from "./Cli.js"

// An interrupted run is not a success: a script running `$(amp-token token)` under `timeout`
// must not take an empty output for a token. Exit as a shell reports a death by that signal.
let signalled: number | undefined
process.once("SIGINT", () => signalled ??= 130)
process.once("SIGTERM", () => signalled ??= 143)

const colors = process.stdout.isTTY === true && (process.env["NO_COLOR"] ?? "") === ""

Cli.run(process.argv, { colors }).pipe(
  // What the CLI uses of the platform, and no more: `NodeContext.layer` would also load the
  // worker and child-process modules into every start.
  Effect.provide(Layer.mergeAll(NodeFileSystem.layer, NodePath.layer, NodeTerminal.layer)),
  // Cli.run prints its own failures and logs on stderr; keep the runtime from adding any.
  NodeRuntime.runMain({
    disableErrorReporting: true,
    disablePrettyLogger: true,
    teardown: (exit, onExit) =>
      onExit(
        Exit.isSuccess(exit)
          ? typeof exit.value === "number" ? exit.value : 0
          : Cause.isInterruptedOnly(exit.cause)
          ? signalled ?? 130
          : 70
      )
  })
)
