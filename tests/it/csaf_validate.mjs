// Validates a CSAF 2.0 document with the BSI/Secvisogram validator: the strict JSON schema and
// every mandatory test of the standard (section 6.1). Usage: node csaf_validate.mjs LIB FILE,
// where LIB is the folder of @secvisogram/csaf-validator-lib. Exit 0 when valid, 1 with the
// errors on stderr when not.
import { readFileSync } from 'node:fs'
import { pathToFileURL } from 'node:url'
import { join } from 'node:path'

const [lib, file] = process.argv.slice(2)
const load = (name) => import(pathToFileURL(join(lib, name)).href)
const { default: validateStrict } = await load('validateStrict.js')
const mandatory = await load('mandatoryTests.js')
const { csaf_2_0_strict } = await load('schemaTests.js')
const document = JSON.parse(readFileSync(file, 'utf8'))
const result = await validateStrict([csaf_2_0_strict, ...Object.values(mandatory)], document)
if (!result.isValid) {
  for (const t of result.tests.filter((t) => !t.isValid)) {
    for (const e of t.errors) console.error(`${t.name}: ${e.instancePath}: ${e.message}`)
  }
  process.exit(1)
}
