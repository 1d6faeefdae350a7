'use strict'
// A mocha reporter that writes every test's outcome as JSON lines to
// WS_SUITE_RESULTS (and one character per test to stdout, as mocha's dot does).
const fs = require('node:fs')
const Mocha = require(process.env.WS_SUITE_MOCHA)

class JsonLines extends Mocha.reporters.Base {
  constructor(runner, options) {
    super(runner, options)
    const out = fs.openSync(process.env.WS_SUITE_RESULTS, 'w')
    const write = (test, state, error) => {
      const record = { file: test.file, title: test.fullTitle(), state }
      if (error) record.error = String(error && error.message ? error.message : error).split('\n').slice(0, 3).join(' | ')
      fs.writeSync(out, JSON.stringify(record) + '\n')
    }
    runner.on('pass', (test) => {
      write(test, 'passed')
      process.stdout.write('.')
    })
    runner.on('fail', (test, error) => {
      // A failing hook is reported with the hook as "test": count it once.
      write(test, test.type === 'hook' ? 'hook-failed' : 'failed', error)
      process.stdout.write('F')
    })
    runner.on('pending', (test) => write(test, 'pending'))
    runner.once('end', () => {
      process.stdout.write('\n')
      fs.closeSync(out)
    })
  }
}
module.exports = JsonLines
