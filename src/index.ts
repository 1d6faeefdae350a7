/**
 * tether-ws: a WebSocket toolkit for Node.js. The main entry is the `ws` v8
 * API, so migrating from ws means changing one import. The sans-I/O protocol
 * core is at 'tether-ws/core'.
 *
 * The package's CommonJS entry (scripts/build.mjs) is this module's default
 * export, the WebSocket class with everything else attached, as
 * `require('ws')` gives; its ES entry re-exports this module's names.
 */
export * from './ws/index.js'
export { default } from './ws/index.js'
