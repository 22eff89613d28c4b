/**
 * An in-memory `FileSystem` with the POSIX behaviour the file store relies on, so that
 * `TokenStore.makeFile` runs in the core tests without a disk: exclusive creation (`wx`) that
 * fails with `AlreadyExists`, modes, inodes and link counts, `rename` replacing its target,
 * `link` refusing to overwrite, symbolic links read through, directories that must exist.
 *
 * Modification times come from the disk's own clock (`advance`), not from the `TestClock`, as
 * a real file system's do. Every call is counted by operation, and `failWith` makes the next
 * calls of an operation on a path fail, to play a full disk or a read-only file system.
 */
import { FileSystem } from "@effect/platform"
import { BadArgument, type PlatformError, SystemError, type SystemErrorReason } from "@effect/platform/Error"
import { Effect, Option } from "effect"

interface FileNode {
  readonly kind: "File"
  bytes: Uint8Array
  mode: number
  mtime: number
  readonly ino: number
  nlink: number
}

interface DirNode {
  readonly kind: "Directory"
  mode: number
  readonly ino: number
}

interface LinkNode {
  readonly kind: "SymbolicLink"
  readonly to: string
  readonly ino: number
}

type Node = FileNode | DirNode | LinkNode

/** A failure to play: the next `times` calls of `operation` on a path `matching` fail. */
interface Failure {
  readonly operation: string
  readonly matching: (path: string) => boolean
  /** A `SystemError` of this reason, or `BadArgument` (which has none). */
  readonly reason: SystemErrorReason | "BadArgument"
  times: number
}

const dirname = (path: string): string => {
  const at = path.lastIndexOf("/")
  return at <= 0 ? "/" : path.slice(0, at)
}

/**
 * A directory's names in an order unrelated to their names or ages, as `readdir` gives them:
 * by a hash of the name (the file store must sort what it means to keep).
 */
const scrambled = (names: Array<string>): Array<string> => {
  const key = (name: string) => [...name].reduce((hash, char) => (hash * 31 + char.charCodeAt(0)) % 1_000_003, 7)
  return names.sort((a, b) => key(a) - key(b))
}

export const make = (options?: {
  readonly startMillis?: number
  /** A platform that reports no modification times (`stat` gives `mtime: None`). */
  readonly noMtimes?: boolean
}) => {
  const nodes = new Map<string, Node>([["/", { kind: "Directory", mode: 0o755, ino: 1 }]])
  let nextIno = 2
  let diskNow = options?.startMillis ?? Date.UTC(2024, 0, 1)
  const calls = new Map<string, number>()
  const failures: Array<Failure> = []
  const hooks: Array<{ operation: string; matching: (path: string) => boolean; run: () => void }> = []
  const encoder = new TextEncoder()
  const decoder = new TextDecoder()

  const error = (reason: SystemErrorReason, method: string, path: string, description?: string) =>
    new SystemError({ reason, module: "FileSystem", method, pathOrDescriptor: path, description })

  /** Counts the call and plays a failure set up for it, if any. */
  const enter = (operation: string, path: string): Effect.Effect<void, PlatformError> =>
    Effect.suspend(() => {
      calls.set(operation, (calls.get(operation) ?? 0) + 1)
      const hook = hooks.findIndex((h) => h.operation === operation && h.matching(path))
      if (hook >= 0) hooks.splice(hook, 1)[0]!.run()
      const failure = failures.find((f) => f.operation === operation && f.times > 0 && f.matching(path))
      if (failure === undefined) return Effect.void
      failure.times--
      return Effect.fail(
        failure.reason === "BadArgument"
          ? new BadArgument({ module: "FileSystem", method: operation, description: `bad argument ${path}` })
          : error(failure.reason, operation, path)
      )
    })

  /** Follows a symbolic link at `path` (one level is all the tests need). */
  const resolve = (path: string): string => {
    const node = nodes.get(path)
    return node?.kind === "SymbolicLink" ? node.to : path
  }

  const parentMustExist = (method: string, path: string): Effect.Effect<void, PlatformError> =>
    nodes.get(dirname(path))?.kind === "Directory" ? Effect.void : Effect.fail(error("NotFound", method, path))

  const info = (node: Node): FileSystem.File.Info => ({
    type: node.kind,
    mtime: options?.noMtimes ? Option.none() : Option.some(new Date(node.kind === "File" ? node.mtime : diskNow)),
    atime: Option.none(),
    birthtime: Option.none(),
    dev: 1,
    ino: Option.some(node.ino),
    mode: node.kind === "SymbolicLink" ? 0o777 : node.mode,
    nlink: Option.some(node.kind === "File" ? node.nlink : 1),
    uid: Option.none(),
    gid: Option.none(),
    rdev: Option.none(),
    size: FileSystem.Size(node.kind === "File" ? node.bytes.length : 0),
    blksize: Option.none(),
    blocks: Option.none()
  })

  const fileAt = (method: string, path: string): Effect.Effect<FileNode, PlatformError> => {
    const node = nodes.get(resolve(path))
    if (node === undefined) return Effect.fail(error("NotFound", method, path))
    if (node.kind !== "File") return Effect.fail(error("BadResource", method, path, "is a directory"))
    return Effect.succeed(node)
  }

  const handle = (path: string, node: Node | undefined): FileSystem.File =>
    ({
      [FileSystem.FileTypeId]: FileSystem.FileTypeId,
      fd: FileSystem.FileDescriptor(node?.ino ?? 0),
      stat: Effect.zipRight(enter("handle.stat", path), Effect.sync(() => info(node!))),
      sync: enter("handle.sync", path),
      writeAll: (bytes: Uint8Array) =>
        Effect.zipRight(
          enter("handle.writeAll", path),
          Effect.sync(() => {
            const file = node as FileNode
            file.bytes = new Uint8Array([...file.bytes, ...bytes])
            file.mtime = diskNow
          })
        )
    }) as unknown as FileSystem.File

  const fs = FileSystem.makeNoop({
    open: (path, openOptions) =>
      Effect.zipRight(
        enter("open", path),
        Effect.suspend(() => {
          const flag = openOptions?.flag ?? "r"
          if (flag === "wx") {
            if (nodes.has(path)) return Effect.fail(error("AlreadyExists", "open", path))
            return Effect.map(parentMustExist("open", path), () => {
              const node: FileNode = {
                kind: "File",
                bytes: new Uint8Array(),
                mode: openOptions?.mode ?? 0o666,
                mtime: diskNow,
                ino: nextIno++,
                nlink: 1
              }
              nodes.set(path, node)
              return handle(path, node)
            })
          }
          const node = nodes.get(resolve(path))
          if (node === undefined) return Effect.fail(error("NotFound", "open", path))
          return Effect.succeed(handle(path, node))
        })
      ),
    makeDirectory: (path, dirOptions) =>
      Effect.zipRight(
        enter("makeDirectory", path),
        Effect.suspend(() => {
          if (!dirOptions?.recursive) {
            if (nodes.has(path)) return Effect.fail(error("AlreadyExists", "makeDirectory", path))
            if (!nodes.has(dirname(path))) return Effect.fail(error("NotFound", "makeDirectory", path))
          }
          const missing: Array<string> = []
          for (let dir = path; !nodes.has(dir); dir = dirname(dir)) missing.push(dir)
          for (const dir of missing.reverse()) {
            nodes.set(dir, { kind: "Directory", mode: dirOptions?.mode ?? 0o777, ino: nextIno++ })
          }
          return Effect.void
        })
      ),
    readDirectory: (path) =>
      Effect.zipRight(
        enter("readDirectory", path),
        Effect.sync(() =>
          scrambled(
            [...nodes.keys()].filter((name) => name !== "/" && dirname(name) === path).map((name) =>
              name.slice(path.length + 1)
            )
          )
        )
      ),
    readFileString: (path) =>
      Effect.zipRight(
        enter("readFileString", path),
        Effect.suspend(() => Effect.map(fileAt("readFileString", path), (node) => decoder.decode(node.bytes)))
      ),
    readLink: (path) =>
      Effect.zipRight(
        enter("readLink", path),
        Effect.suspend(() => {
          const node = nodes.get(path)
          if (node === undefined) return Effect.fail(error("NotFound", "readLink", path))
          return node.kind === "SymbolicLink"
            ? Effect.succeed(node.to)
            : Effect.fail(error("InvalidData", "readLink", path))
        })
      ),
    stat: (path) =>
      Effect.zipRight(
        enter("stat", path),
        Effect.suspend(() => {
          const node = nodes.get(resolve(path))
          return node === undefined ? Effect.fail(error("NotFound", "stat", path)) : Effect.succeed(info(node))
        })
      ),
    chmod: (path, mode) =>
      Effect.zipRight(
        enter("chmod", path),
        Effect.suspend(() => {
          const node = nodes.get(resolve(path))
          if (node === undefined) return Effect.fail(error("NotFound", "chmod", path))
          if (node.kind !== "SymbolicLink") node.mode = mode
          return Effect.void
        })
      ),
    rename: (from, to) =>
      Effect.zipRight(
        enter("rename", from),
        Effect.suspend(() => {
          const node = nodes.get(from)
          if (node === undefined) return Effect.fail(error("NotFound", "rename", from))
          return Effect.map(parentMustExist("rename", to), () => {
            const replaced = nodes.get(to)
            if (replaced?.kind === "File") replaced.nlink--
            nodes.delete(from)
            nodes.set(to, node)
          })
        })
      ),
    link: (from, to) =>
      Effect.zipRight(
        enter("link", from),
        Effect.suspend(() => {
          const node = nodes.get(from)
          if (node === undefined) return Effect.fail(error("NotFound", "link", from))
          if (nodes.has(to)) return Effect.fail(error("AlreadyExists", "link", to))
          if (node.kind === "File") node.nlink++
          nodes.set(to, node)
          return Effect.void
        })
      ),
    remove: (path) =>
      Effect.zipRight(
        enter("remove", path),
        Effect.suspend(() => {
          const node = nodes.get(path)
          if (node === undefined) return Effect.fail(error("NotFound", "remove", path))
          if (node.kind === "File") node.nlink--
          nodes.delete(path)
          return Effect.void
        })
      )
  })

  const makeParents = (path: string) => {
    for (let dir = dirname(path); !nodes.has(dir); dir = dirname(dir)) {
      nodes.set(dir, { kind: "Directory", mode: 0o700, ino: nextIno++ })
    }
  }

  return {
    fs,
    layer: FileSystem.layerNoop(fs),
    /** Moves the disk's clock (the modification times of files written from now on). */
    advance: (millis: number) => {
      diskNow += millis
    },
    /** How many times `operation` was called (`open`, `rename`, `handle.sync`, …). */
    calls: (operation: string) => calls.get(operation) ?? 0,
    /** Makes the next `times` calls of `operation` on a path `matching` fail with `reason`. */
    failWith: (
      operation: string,
      reason: SystemErrorReason | "BadArgument",
      matching: (path: string) => boolean,
      times = Infinity
    ) => {
      failures.push({ operation, reason, matching, times })
    },
    /** Runs `run` once, just before the next call of `operation` on a path `matching`. */
    before: (operation: string, matching: (path: string) => boolean, run: () => void) => {
      hooks.push({ operation, matching, run })
    },
    /** Writes a file directly (test setup), with the disk's current time. */
    put: (path: string, text: string, mode = 0o600, mtime = diskNow) => {
      makeParents(path)
      nodes.set(path, { kind: "File", bytes: encoder.encode(text), mode, mtime, ino: nextIno++, nlink: 1 })
    },
    /** Rewrites the file at `path` in place (same inode), as a writer without rename would. */
    rewrite: (path: string, text: string) => {
      const node = nodes.get(path)
      if (node?.kind !== "File") throw new Error(`no file at ${path}`)
      node.bytes = encoder.encode(text)
      node.mtime = diskNow
    },
    /** Removes whatever is at `path` (test setup: another process at work). */
    drop: (path: string) => {
      nodes.delete(path)
    },
    putDirectory: (path: string) => {
      nodes.set(path, { kind: "Directory", mode: 0o700, ino: nextIno++ })
    },
    symlink: (path: string, to: string) => {
      makeParents(path)
      nodes.set(path, { kind: "SymbolicLink", to, ino: nextIno++ })
    },
    /** The text of the file at `path`, if it is one. */
    text: (path: string): string | undefined => {
      const node = nodes.get(path)
      return node?.kind === "File" ? decoder.decode(node.bytes) : undefined
    },
    mode: (path: string): number | undefined => {
      const node = nodes.get(path)
      return node?.kind === "SymbolicLink" || node === undefined ? undefined : node.mode
    },
    kind: (path: string) => nodes.get(path)?.kind,
    /** The names in directory `path`, sorted. */
    list: (path: string): Array<string> =>
      [...nodes.keys()].filter((name) => name !== "/" && dirname(name) === path).map((name) =>
        name.slice(path.length + 1)
      )
        .sort()
  }
}

export type MemoryFileSystem = ReturnType<typeof make>
