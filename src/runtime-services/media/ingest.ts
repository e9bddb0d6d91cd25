// The upload pipeline: one pass over the incoming bytes feeds the SHA-256,
// clamd's INSTREAM, the staging file and the type sniffer at once. The
// result is a staged blob with its verdict; the caller decides (under the
// per-hash lock) whether to promote it. Any failure discards what was staged.
import { createHash } from 'node:crypto';
import type { BlobStore, StagedBlob } from './blob-store.js';
import { openScan, ScanUnavailableError, type ClamdOptions } from './clamd.js';
import { SNIFF_BYTES, sniff, type Sniffed } from './sniff.js';

/** An upload refused for a reason the client can act on; `status` is the HTTP answer. */
export class MediaError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details: Record<string, unknown> = {},
  ) {
    super(message);
    this.name = 'MediaError';
  }
}

export interface IngestLimits {
  maxBytes: number;
  /** Bytes the user may still store under the quota. */
  quotaRemaining: number;
  allowedTypes: ReadonlySet<string>;
}

export interface Ingested {
  hash: string;
  size: number;
  sniffed: Sniffed;
  staged: StagedBlob;
}

export async function ingest(
  source: AsyncIterable<Buffer>,
  deps: { store: BlobStore; clamd: ClamdOptions },
  limits: IngestLimits,
): Promise<Ingested> {
  let scan;
  try {
    scan = await openScan(deps.clamd);
  } catch (err) {
    throw new MediaError(503, 'scanner_unavailable', `virus scanner unavailable: ${(err as Error).message}`);
  }
  const staged = await deps.store.stage();
  const hash = createHash('sha256');
  let size = 0;
  let head: Buffer[] = [];
  let headLen = 0;
  let sniffed: Sniffed | undefined;
  const check = () => {
    sniffed = sniff(Buffer.concat(head));
    head = [];
    if (!limits.allowedTypes.has(sniffed.type)) {
      throw new MediaError(415, 'type_not_allowed', `content type ${sniffed.type} (detected from the bytes) is not allowed`, { type: sniffed.type });
    }
  };
  try {
    for await (const chunk of source) {
      size += chunk.length;
      if (size > limits.maxBytes) throw new MediaError(413, 'too_large', `file exceeds the limit of ${limits.maxBytes} bytes`);
      if (size > limits.quotaRemaining) throw new MediaError(413, 'quota_exceeded', 'upload would exceed your storage quota');
      if (!sniffed) {
        head.push(chunk);
        headLen += chunk.length;
        if (headLen >= SNIFF_BYTES) check();
      }
      hash.update(chunk);
      await Promise.all([scan.write(chunk), staged.write(chunk)]);
    }
    if (size === 0) throw new MediaError(400, 'empty', 'the upload is empty');
    if (!sniffed) check();
    const verdict = await scan.finish();
    if (!verdict.clean) {
      throw new MediaError(422, 'infected', `the upload was rejected by the virus scanner`, { signature: verdict.signature });
    }
    return { hash: hash.digest('hex'), size, sniffed: sniffed!, staged };
  } catch (err) {
    scan.abort();
    await staged.discard();
    if (err instanceof MediaError) throw err;
    if (err instanceof ScanUnavailableError) {
      throw new MediaError(503, 'scanner_unavailable', `virus scanner unavailable: ${err.message}`);
    }
    throw err;
  }
}
