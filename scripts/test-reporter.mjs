// Node's TAP reporter, plus one thing: just before the summary, a list of the
// tests that failed, each with its file and the first line of its error. A CI
// log that keeps only its tail then still says what failed, not just how many.
import { relative } from 'node:path'
import { tap } from 'node:test/reporters'

const root = new URL('..', import.meta.url).pathname

export default async function* tapWithFailures(source) {
  yield* tap(withFailureList(source))
}

async function* withFailureList(source) {
  const failures = []
  let listed = false
  for await (const event of source) {
    if (event.type === 'test:fail' && event.data.details?.error?.failureType !== 'subtestsFailed') {
      failures.push(describeFailure(event.data))
    }
    if (!listed && event.type === 'test:diagnostic' && event.data.nesting === 0 && /^tests \d+$/.test(event.data.message)) {
      listed = true
      for (const message of failures) yield { type: 'test:diagnostic', data: { ...event.data, message } }
    }
    yield event
  }
}

function describeFailure({ name, file, details }) {
  const error = details?.error
  const cause = error?.cause ?? error
  const firstLine = String(cause?.message ?? cause ?? '').split('\n')[0].slice(0, 300)
  const where = file ? relative(root, file) : '?'
  return `failed: ${where}: ${name}: ${firstLine}`
}
