#!/usr/bin/env node
/** `amp-token`, bundled as `dist/cli.cjs`; in the workspace, `pnpm amp-token <command>`. */
import * as NodeFileSystem from "@effect/platform-node/NodeFileSystem"
import * as NodePath from "@effect/platform-node/NodePath"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import * as NodeTerminal from "@effect/platform-node/NodeTerminal"
import { Cause, Effect, Exit, Layer } from "effect"
import * as Cli from "./Cli.js"

// An interrupted run is not a success (`$(amp-token token)` under `timeout` must not take an
// empty output for a token): exit as a shell reports a death by that signal.
let signalled: number | undefined
process.once("SIGINT", () => signalled ??= 130)
process.once("SIGTERM", () => signalled ??= 143)

const colors = process.stdout.isTTY === true && (process.env["NO_COLOR"] ?? "") === ""

Cli.run(process.argv, { colors }).pipe(
  // Not `NodeContext.layer`, which would load the worker and child-process modules too.
  Effect.provide(Layer.mergeAll(NodeFileSystem.layer, NodePath.layer, NodeTerminal.layer)),
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
