// The tests of ws's suite that tether does not pass, each with the reason.
// Keyed by mocha's full title. README's "Migrating from ws" table lists the
// behaviours behind them.
export const PUBLIC_FILES = ['websocket', 'websocket-server', 'create-websocket-stream']

export const EXCLUSIONS = new Map([
])
