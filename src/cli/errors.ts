/**
 * An error the CLI reports as one line and an exit status, never a stack
 * trace: bad input, a refused handshake, a port in use.
 */
export class CliError extends Error {
  readonly exitCode: number
  constructor(message: string, exitCode = 1) {
    super(message)
    this.name = 'CliError'
    this.exitCode = exitCode
  }
}
