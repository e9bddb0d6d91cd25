// Content type from the first bytes of an upload. The client's Content-Type
// header and file name are never consulted: a browser serves what we say the
// bytes are, so a script saved as "cat.jpg" must be labelled as what it is.
export const SNIFF_BYTES = 512;

export interface Sniffed {
  type: string;
  /** Pixel dimensions when the header carries them (PNG, GIF), for the bomb check. */
  width?: number;
  height?: number;
}

const startsWith = (b: Buffer, sig: number[], at = 0) => b.length >= at + sig.length && sig.every((v, i) => b[at + i] === v);
const ascii = (b: Buffer, s: string, at = 0) => b.length >= at + s.length && b.toString('latin1', at, at + s.length) === s;

function ftypBrand(b: Buffer): string | undefined {
  return ascii(b, 'ftyp', 4) && b.length >= 12 ? b.toString('latin1', 8, 12) : undefined;
}

function looksLikeText(b: Buffer): boolean {
  if (b.length === 0) return false;
  // A multi-byte UTF-8 sequence may be cut at the sniff window's end.
  const text = new TextDecoder('utf-8', { fatal: false }).decode(b);
  const bad = [...text.slice(0, -3)].filter((c) => {
    const code = c.codePointAt(0)!;
    return c === '\uFFFD' || (code < 0x20 && c !== '\n' && c !== '\r' && c !== '\t' && c !== '\f');
  }).length;
  return bad === 0;
}

/** Markup is matched after whitespace and a BOM, case-insensitively, like browsers' sniffing. */
function markup(b: Buffer): string | undefined {
  const head = b.toString('utf8').replace(/^\uFEFF/, '').trimStart().slice(0, SNIFF_BYTES).toLowerCase();
  if (/^<svg[\s>]/.test(head) || (/^<\?xml/.test(head) && head.includes('<svg'))) return 'image/svg+xml';
  if (/^<(!doctype html|html|head|body|script|iframe|h1|div|table|a |style|title|p[\s>]|br|img|font|b[\s>]|!--)/.test(head)) return 'text/html';
  if (/^<\?xml/.test(head)) return 'application/xml';
  return undefined;
}

export function sniff(b: Buffer): Sniffed {
  if (startsWith(b, [0xff, 0xd8, 0xff])) return { type: 'image/jpeg' };
  if (startsWith(b, [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])) {
    // IHDR is always the first chunk: width and height at bytes 16..23.
    return b.length >= 24 && ascii(b, 'IHDR', 12)
      ? { type: 'image/png', width: b.readUInt32BE(16), height: b.readUInt32BE(20) }
      : { type: 'image/png' };
  }
  if (ascii(b, 'GIF87a') || ascii(b, 'GIF89a')) {
    return b.length >= 10 ? { type: 'image/gif', width: b.readUInt16LE(6), height: b.readUInt16LE(8) } : { type: 'image/gif' };
  }
  if (ascii(b, 'RIFF') && ascii(b, 'WEBP', 8)) return { type: 'image/webp' };
  if (ascii(b, 'RIFF') && ascii(b, 'WAVE', 8)) return { type: 'audio/wav' };
  if (ascii(b, 'RIFF') && ascii(b, 'AVI ', 8)) return { type: 'video/x-msvideo' };
  const brand = ftypBrand(b);
  if (brand) {
    if (brand === 'avif' || brand === 'avis') return { type: 'image/avif' };
    if (['heic', 'heix', 'hevc', 'heim', 'heis', 'mif1', 'msf1'].includes(brand)) return { type: 'image/heic' };
    if (brand === 'qt  ') return { type: 'video/quicktime' };
    if (brand.startsWith('M4A')) return { type: 'audio/mp4' };
    return { type: 'video/mp4' };
  }
  if (startsWith(b, [0x1a, 0x45, 0xdf, 0xa3])) return { type: 'video/webm' };
  if (ascii(b, 'OggS')) return { type: 'audio/ogg' };
  if (ascii(b, 'fLaC')) return { type: 'audio/flac' };
  if (ascii(b, 'ID3') || startsWith(b, [0xff, 0xfb]) || startsWith(b, [0xff, 0xf3]) || startsWith(b, [0xff, 0xf2])) return { type: 'audio/mpeg' };
  if (ascii(b, '%PDF-')) return { type: 'application/pdf' };
  if (startsWith(b, [0x50, 0x4b, 0x03, 0x04]) || startsWith(b, [0x50, 0x4b, 0x05, 0x06])) return { type: 'application/zip' };
  if (startsWith(b, [0x1f, 0x8b])) return { type: 'application/gzip' };
  if (startsWith(b, [0x7f, 0x45, 0x4c, 0x46])) return { type: 'application/x-executable' };
  if (ascii(b, 'MZ')) return { type: 'application/x-msdownload' };
  const m = markup(b);
  if (m) return { type: m };
  if (looksLikeText(b)) return { type: 'text/plain' };
  return { type: 'application/octet-stream' };
}

/** Types a browser may render inline. SVG is an image but carries scripts: never inline. */
export function servesInline(type: string): boolean {
  return (type.startsWith('image/') && type !== 'image/svg+xml') || type.startsWith('video/') || type.startsWith('audio/');
}

/** Raster types sharp decodes for thumbnails; SVG is rendered by a script-capable engine and is excluded. */
export const THUMBNAIL_TYPES = new Set(['image/jpeg', 'image/png', 'image/gif', 'image/webp', 'image/avif']);
