#!/usr/bin/env node
// Reference tus 1.0 server (@tus/server + @tus/file-store) to benchmark the Django
// endpoint against: same protocol, same client, a known-good implementation.
//
//   node server.mjs --dir /tmp/tus-files [--port 1080] [--host 127.0.0.1]
//
// Serves uploads under /files/ and prints one line "listening http://HOST:PORT/files/"
// on stdout once the socket is bound. SIGINT/SIGTERM close it. FileStore supports
// creation, creation-with-upload, creation-defer-length, termination and expiration;
// it has no concatenation, so tus-js-client's parallelUploads do not work against it.

import { resolve } from 'node:path'
import { parseArgs } from 'node:util'
import { FileStore } from '@tus/file-store'
import { Server } from '@tus/server'

const USAGE = 'usage: node server.mjs --dir DIRECTORY [--port 1080] [--host 127.0.0.1]'
const UPLOAD_PATH = '/files'

function parseCli(argv) {
  const { values } = parseArgs({
    args: argv,
    options: {
      dir: { type: 'string' },
      port: { type: 'string', default: '1080' },
      host: { type: 'string', default: '127.0.0.1' },
      help: { type: 'boolean', default: false },
    },
    strict: true,
  })
  if (values.help) return null
  if (!values.dir) throw new Error('--dir is required')
  if (!/^\d+$/.test(values.port) || Number(values.port) > 65535) {
    throw new Error(`--port must be 0..65535, got ${JSON.stringify(values.port)}`)
  }
  return { dir: resolve(values.dir), port: Number(values.port), host: values.host }
}

function main() {
  let cli
  try {
    cli = parseCli(process.argv.slice(2))
  } catch (error) {
    process.stderr.write(`${error.message}\n${USAGE}\n`)
    process.exitCode = 2
    return
  }
  if (cli === null) {
    process.stdout.write(`${USAGE}\n`)
    return
  }

  const tus = new Server({ path: UPLOAD_PATH, datastore: new FileStore({ directory: cli.dir }) })
  const http = tus.listen({ host: cli.host, port: cli.port }, () => {
    const { port } = http.address()
    // Bracket IPv6 hosts so the printed URL is usable as is.
    const host = cli.host.includes(':') ? `[${cli.host}]` : cli.host
    process.stdout.write(`listening http://${host}:${port}${UPLOAD_PATH}/\n`)
  })
  http.on('error', (error) => {
    process.stderr.write(`tus server failed: ${error.message}\n`)
    process.exitCode = 1
  })
  for (const signal of ['SIGINT', 'SIGTERM']) {
    process.once(signal, () => {
      http.close()
      // Keep-alive sockets would otherwise hold the process open.
      http.closeAllConnections()
    })
  }
}

main()
