// Everything that decodes pixels. Inputs are scanned, stored uploads of a
// raster type (never SVG: rendering it runs a script-capable engine); the
// pixel count is checked from the header before decoding (decompression
// bombs), EXIF orientation is applied, and the output carries no metadata
// at all — sharp writes none unless asked, which is what strips GPS.
import sharp from 'sharp';
import type { Readable } from 'node:stream';

export class ImageError extends Error {}

export interface ImageLimits {
  maxInputPixels: number;
}

function decoder(limits: ImageLimits) {
  // failOn 'error': a truncated or corrupt image is refused instead of half-decoded.
  // animated: false — only the first frame of a GIF/WebP animation is used.
  return sharp({ limitInputPixels: limits.maxInputPixels, failOn: 'error', animated: false, sequentialRead: true });
}

/** Checks the header's pixel count before any decoding happens. */
export async function assertDecodable(input: Buffer | Readable, limits: ImageLimits): Promise<{ width: number; height: number }> {
  const meta = await (Buffer.isBuffer(input) ? sharp(input, { limitInputPixels: false }) : input.pipe(sharp({ limitInputPixels: false }))).metadata();
  const w = meta.width ?? 0;
  const h = meta.height ?? 0;
  if (!w || !h) throw new ImageError('image has no dimensions');
  if (w * h > limits.maxInputPixels) throw new ImageError(`image of ${w}x${h} pixels exceeds the limit of ${limits.maxInputPixels}`);
  return { width: w, height: h };
}

/** One WebP per size, longest side ≤ size, never enlarged. */
export async function thumbnails(input: Readable, sizes: number[], limits: ImageLimits): Promise<{ size: number; bytes: Buffer; width: number; height: number }[]> {
  const src = decoder(limits).rotate();
  const outs = sizes.map((size) =>
    src.clone().resize(size, size, { fit: 'inside', withoutEnlargement: true }).webp({ quality: 80 }).toBuffer({ resolveWithObject: true }),
  );
  input.on('error', (err) => src.destroy(err));
  input.pipe(src);
  try {
    const res = await Promise.all(outs);
    return res.map((r, i) => ({ size: sizes[i]!, bytes: r.data, width: r.info.width, height: r.info.height }));
  } catch (err) {
    throw new ImageError(`thumbnail failed: ${(err as Error).message}`);
  }
}

/** A square profile picture. */
export async function avatar(input: Buffer, size: number, limits: ImageLimits): Promise<Buffer> {
  try {
    return await sharp(input, { limitInputPixels: limits.maxInputPixels, failOn: 'error', animated: false })
      .rotate()
      .resize(size, size, { fit: 'cover', position: 'attention' })
      .webp({ quality: 85 })
      .toBuffer();
  } catch (err) {
    throw new ImageError(`avatar failed: ${(err as Error).message}`);
  }
}
