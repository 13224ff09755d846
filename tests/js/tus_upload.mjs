#!/usr/bin/env node
// Upload one file with tus-js-client's Node API, for server tests.
//
//   node tus_upload.mjs --endpoint URL --file PATH [--chunk-size BYTES] [--parallel N]
//        [--header 'Name: value' ...] [--metadata key=value ...]
//        [--interrupt-after BYTES] [--resume-url URL ...] [--retry-delays MS,MS,...]
//
// Prints exactly one JSON line on stdout when done:
//   {"url", "bytes_uploaded", "interrupted", "error", "partial_urls"}
// Exit code 0 on success or on the intentional interruption, 1 on any error.
//
// bytes_uploaded counts bytes the server acknowledged (Upload-Offset). For a single
// upload it is the offset of the upload, including bytes sent by an earlier run;
// for a parallel upload it is what this run got acknowledged (the full size on success).
// --interrupt-after compares against that number and aborts with upload.abort().
// --resume-url resumes through the fingerprint + URL storage path that browsers use;
// give it once per partial URL (partial_urls of the interrupted run) with --parallel.
// partial_urls is known once every part has been created; a single resumed upload
// whose URL is gone fails (no endpoint is passed), partial uploads are re-created.

import { createReadStream, statSync } from 'node:fs'
import { basename } from 'node:path'
import { parseArgs } from 'node:util'
import { Upload, defaultOptions } from 'tus-js-client'

const USAGE =
  'usage: node tus_upload.mjs --endpoint URL --file PATH [--chunk-size BYTES] [--parallel N] ' +
  "[--header 'Name: value' ...] [--metadata key=value ...] [--interrupt-after BYTES] " +
  '[--resume-url URL ...] [--retry-delays MS,MS,...]'

/** Write the single result line; stdout carries nothing else. */
function report({ url = null, bytesUploaded = 0, interrupted = false, error = null, partialUrls = null }) {
  process.stdout.write(
    `${JSON.stringify({
      url,
      bytes_uploaded: bytesUploaded,
      interrupted,
      error,
      partial_urls: partialUrls,
    })}\n`,
  )
}

/** Fail before any request: the argument is wrong, so say which and how. */
class UsageError extends Error {}

function parseNonNegativeInt(name, text) {
  if (text === undefined) return null
  if (!/^\d+$/.test(text)) throw new UsageError(`--${name} must be a non-negative integer, got ${JSON.stringify(text)}`)
  return Number(text)
}

function parseHeaders(values) {
  const headers = {}
  for (const raw of values) {
    const colon = raw.indexOf(':')
    if (colon <= 0) throw new UsageError(`--header must look like 'Name: value', got ${JSON.stringify(raw)}`)
    headers[raw.slice(0, colon).trim()] = raw.slice(colon + 1).trim()
  }
  return headers
}

function parseMetadata(values, filePath) {
  // Uppy and the admin page send the file name; tests can override or add keys.
  const metadata = { filename: basename(filePath) }
  for (const raw of values) {
    const equals = raw.indexOf('=')
    if (equals <= 0) throw new UsageError(`--metadata must look like key=value, got ${JSON.stringify(raw)}`)
    metadata[raw.slice(0, equals)] = raw.slice(equals + 1)
  }
  return metadata
}

function parseRetryDelays(text) {
  // Retries are off by default so a test sees the server's first error, not a later one.
  if (text === undefined || text === '') return null
  return text.split(',').map((part) => parseNonNegativeInt('retry-delays', part.trim()))
}

function parseCli(argv) {
  const { values } = parseArgs({
    args: argv,
    options: {
      endpoint: { type: 'string' },
      file: { type: 'string' },
      'chunk-size': { type: 'string' },
      parallel: { type: 'string' },
      header: { type: 'string', multiple: true, default: [] },
      metadata: { type: 'string', multiple: true, default: [] },
      'interrupt-after': { type: 'string' },
      'resume-url': { type: 'string', multiple: true, default: [] },
      'retry-delays': { type: 'string' },
      help: { type: 'boolean', default: false },
    },
    strict: true,
  })
  if (values.help) return { help: true }
  if (!values.file) throw new UsageError('--file is required')
  const resumeUrls = values['resume-url']
  if (!values.endpoint && resumeUrls.length === 0) throw new UsageError('--endpoint is required unless --resume-url is given')
  const parallel = parseNonNegativeInt('parallel', values.parallel) ?? 1
  if (parallel < 1) throw new UsageError('--parallel must be at least 1')
  if (parallel > 1 && !values.endpoint) throw new UsageError('--parallel needs --endpoint for the final concatenation')
  if (resumeUrls.length > 1 && resumeUrls.length !== parallel) {
    throw new UsageError(`${resumeUrls.length} --resume-url values need --parallel ${resumeUrls.length}`)
  }
  const chunkSize = parseNonNegativeInt('chunk-size', values['chunk-size'])
  if (chunkSize === 0) throw new UsageError('--chunk-size must be positive')
  const interruptAfter = parseNonNegativeInt('interrupt-after', values['interrupt-after'])
  // Without chunks the only acknowledgement is the last one, so there is nothing to interrupt.
  if (interruptAfter !== null && chunkSize === null) throw new UsageError('--interrupt-after needs --chunk-size')
  return {
    help: false,
    endpoint: values.endpoint ?? null,
    file: values.file,
    chunkSize: chunkSize ?? Number.POSITIVE_INFINITY,
    parallel,
    headers: parseHeaders(values.header),
    metadata: parseMetadata(values.metadata, values.file),
    interruptAfter,
    resumeUrls,
    retryDelays: parseRetryDelays(values['retry-delays']),
  }
}

/** In-memory UrlStorage: records what tus-js-client stores and serves seeded resume URLs. */
class MemoryUrlStorage {
  constructor() {
    this.entries = new Map()
    this.counter = 0
  }

  async findAllUploads() {
    return [...this.entries.values()]
  }

  async findUploadsByFingerprint(fingerprint) {
    return [...this.entries.values()].filter((entry) => entry.fingerprint === fingerprint)
  }

  async removeUpload(urlStorageKey) {
    this.entries.delete(urlStorageKey)
  }

  async addUpload(fingerprint, upload) {
    this.counter += 1
    const urlStorageKey = `tus::${fingerprint}::${this.counter}`
    this.entries.set(urlStorageKey, { ...upload, fingerprint, urlStorageKey })
    return urlStorageKey
  }

  /** The parallel partial URLs tus-js-client stored once every part had one. */
  latestPartialUrls() {
    const stored = [...this.entries.values()].reverse().find((entry) => Array.isArray(entry.parallelUploadUrls))
    return stored ? [...stored.parallelUploadUrls] : null
  }
}

async function run(cli) {
  const size = statSync(cli.file).size
  const urlStorage = new MemoryUrlStorage()
  const singleUpload = cli.parallel === 1

  let acknowledged = 0
  let interrupted = false
  let upload = null
  let settle = null
  const finished = new Promise((resolve) => {
    settle = resolve
  })

  const options = {
    // Without an endpoint a failed resume is an error instead of a silent new upload.
    endpoint: cli.resumeUrls.length > 0 && singleUpload ? null : cli.endpoint,
    chunkSize: cli.chunkSize,
    parallelUploads: cli.parallel,
    headers: cli.headers,
    metadata: cli.metadata,
    metadataForPartialUploads: cli.metadata,
    retryDelays: cli.retryDelays,
    urlStorage,
    fingerprint: defaultOptions.fingerprint,
    storeFingerprintForResuming: true,
    removeFingerprintOnSuccess: false,
    onChunkComplete(chunkSize, bytesAccepted) {
      // Partial uploads report their own offsets, so parallel mode sums the deltas.
      acknowledged = singleUpload ? bytesAccepted : acknowledged + chunkSize
      if (cli.interruptAfter === null || interrupted || acknowledged >= size) return
      if (acknowledged >= cli.interruptAfter) {
        interrupted = true
        upload.abort(false).then(
          () => settle({ ok: true }),
          (error) => settle({ ok: false, error }),
        )
      }
    },
    onSuccess() {
      acknowledged = size
      settle({ ok: true })
    },
    onError(error) {
      settle({ ok: false, error })
    },
  }

  const source = createReadStream(cli.file)
  upload = new Upload(source, options)

  if (cli.resumeUrls.length > 0) {
    // Seed the URL storage under this file's fingerprint, then resume the way a browser does.
    const fingerprint = await options.fingerprint(source, options)
    const previous = singleUpload
      ? { uploadUrl: cli.resumeUrls[0], parallelUploadUrls: null }
      : { uploadUrl: null, parallelUploadUrls: cli.resumeUrls }
    await urlStorage.addUpload(fingerprint, { size, metadata: cli.metadata, creationTime: new Date().toString(), ...previous })
    const [found] = await upload.findPreviousUploads()
    upload.resumeFromPreviousUpload(found)
  }

  upload.start()
  const outcome = await finished
  source.destroy()

  const partialUrls = singleUpload ? null : urlStorage.latestPartialUrls()
  const result = {
    url: upload.url ?? null,
    bytesUploaded: acknowledged,
    interrupted: interrupted && outcome.ok,
    error: outcome.ok ? null : String(outcome.error?.message ?? outcome.error),
    partialUrls,
  }
  return result
}

async function main() {
  let cli
  try {
    cli = parseCli(process.argv.slice(2))
  } catch (error) {
    report({ error: `${error.message}\n${USAGE}` })
    return 1
  }
  if (cli.help) {
    process.stderr.write(`${USAGE}\n`)
    return 0
  }
  try {
    const result = await run(cli)
    report(result)
    return result.error === null ? 0 : 1
  } catch (error) {
    report({ error: String(error?.message ?? error) })
    return 1
  }
}

process.exitCode = await main()
