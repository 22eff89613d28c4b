/**
 * The installed executable, built for a test file as `pnpm build` builds it into `dist/`.
 */
import * as ChildProcess from "node:child_process"
import { fileURLToPath } from "node:url"

const packageDir = fileURLToPath(new URL("../..", import.meta.url))

/** Runs `scripts/bundle.mjs` into `outdir` (emptied first): `amp-token.cjs`, `cli.cjs`, `redis.cjs`, `pg.cjs`. */
export const build = (outdir: string): Promise<void> =>
  new Promise<void>((resolve, reject) =>
    ChildProcess.execFile(
      process.execPath,
      ["scripts/bundle.mjs", "--outdir", outdir],
      { cwd: packageDir },
      (error, _, stderr) => error === null ? resolve() : reject(new Error(`bundle failed: ${stderr}`))
    )
  )
