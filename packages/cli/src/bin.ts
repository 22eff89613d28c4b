#!/usr/bin/env node
/**
 * The `amp-token` executable. Installed, it is the bundle `dist/amp-token.js` (see
 * `scripts/bundle.mjs`); in the workspace, `pnpm amp-token <command>` runs this file with tsx.
 * See `Cli.ts` for the commands.
 */
import * as NodeContext from "@effect/platform-node/NodeContext"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { Effect } from "effect"
import * as Cli from "./Cli.js"

Cli.run(process.argv).pipe(
  Effect.flatMap((code) => Effect.sync(() => void (process.exitCode = code))),
  Effect.provide(NodeContext.layer),
  // Cli.run prints its own failures and logs on stderr; keep the runtime from adding any.
  NodeRuntime.runMain({ disableErrorReporting: true, disablePrettyLogger: true })
)
