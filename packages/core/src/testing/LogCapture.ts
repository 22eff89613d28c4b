/**
 * Captures every log line (message, cause and annotations) written while a test runs: for tests
 * of what a program logs, and of what it must never log (a token, a password).
 *
 * @since 0.1.0
 */
import { Effect, Layer, Logger, LogLevel } from "effect"

/**
 * A fresh capture: `provide` (or `layer`) routes every log line of any level into `lines`.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = () => {
  const lines: Array<{ readonly level: string; readonly text: string }> = []
  const logger = Logger.make(({ annotations, cause, logLevel, message }) => {
    const parts = Array.isArray(message) ? message : [message]
    lines.push({
      level: logLevel.label,
      text: [...parts.map(String), String(cause), JSON.stringify([...annotations])].join(" ")
    })
  })
  const layer = Layer.merge(Logger.replace(Logger.defaultLogger, logger), Logger.minimumLogLevel(LogLevel.All))
  return {
    lines,
    layer,
    warnings: () => lines.filter((line) => line.level === "WARN").map((line) => line.text),
    provide: <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.provide(effect, layer)
  }
}
