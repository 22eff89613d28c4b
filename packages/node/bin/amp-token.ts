#!/usr/bin/env -S npx tsx
/**
 * The `amp-token` executable: `pnpm amp-token <command>` from the repository root, or
 * `amp-token <command>` where the package is installed. See `src/Cli.ts`.
 */
import * as NodeContext from "@effect/platform-node/NodeContext"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { Effect } from "effect"
import * as Cli from "../src/Cli.js"

Cli.run(process.argv).pipe(
  Effect.flatMap((code) => Effect.sync(() => void (process.exitCode = code))),
  Effect.provide(NodeContext.layer),
  // Cli.run prints its own failures and logs on stderr; keep the runtime from adding any.
  NodeRuntime.runMain({ disableErrorReporting: true, disablePrettyLogger: true })
)
