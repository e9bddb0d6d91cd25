import { describe, expect, it } from 'vitest';
import { parseReply } from '../../src/runtime-services/media/clamd.js';
import { etagMatches, parseRange } from '../../src/runtime-services/media/range.js';
import { servesInline, sniff } from '../../src/runtime-services/media/sniff.js';

const png = (w: number, h: number) => {
  const b = Buffer.alloc(33);
  Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]).copy(b);
  b.writeUInt32BE(13, 8);
  b.write('IHDR', 12, 'latin1');
  b.writeUInt32BE(w, 16);
  b.writeUInt32BE(h, 20);
  return b;
};

describe('content type from the bytes', () => {
  it('recognises images, video, audio and documents by magic number', () => {
    expect(sniff(Buffer.from([0xff, 0xd8, 0xff, 0xe0, 0, 0x10]))).toEqual({ type: 'image/jpeg' });
    expect(sniff(png(30000, 20000))).toEqual({ type: 'image/png', width: 30000, height: 20000 });
    expect(sniff(Buffer.from('GIF89a\x10\x00\x20\x00', 'latin1'))).toEqual({ type: 'image/gif', width: 16, height: 32 });
    expect(sniff(Buffer.from('RIFF\0\0\0\0WEBPVP8 ', 'latin1')).type).toBe('image/webp');
    expect(sniff(Buffer.from('\0\0\0\x20ftypisom\0\0\0\0', 'latin1')).type).toBe('video/mp4');
    expect(sniff(Buffer.from('\0\0\0\x20ftypavif\0\0\0\0', 'latin1')).type).toBe('image/avif');
    expect(sniff(Buffer.from('%PDF-1.7\n')).type).toBe('application/pdf');
    expect(sniff(Buffer.from('ID3\x03\0', 'latin1')).type).toBe('audio/mpeg');
  });

  it('labels markup as what it is, whatever the file was called', () => {
    expect(sniff(Buffer.from('  <!DOCTYPE html><html><script>alert(1)</script>')).type).toBe('text/html');
    expect(sniff(Buffer.from('\uFEFF<HTML><body>x')).type).toBe('text/html');
    expect(sniff(Buffer.from('<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg"><script/></svg>')).type).toBe('image/svg+xml');
    expect(sniff(Buffer.from('<svg onload="alert(1)">')).type).toBe('image/svg+xml');
  });

  it('falls back to text/plain for clean UTF-8 and octet-stream for binary', () => {
    expect(sniff(Buffer.from('X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*')).type).toBe('text/plain');
    expect(sniff(Buffer.from('grüße\n')).type).toBe('text/plain');
    expect(sniff(Buffer.from([0x00, 0x01, 0x02, 0x03, 0xfe])).type).toBe('application/octet-stream');
  });

  it('serves only raster images, video and audio inline', () => {
    expect(servesInline('image/png')).toBe(true);
    expect(servesInline('video/mp4')).toBe(true);
    expect(servesInline('image/svg+xml')).toBe(false);
    expect(servesInline('text/html')).toBe(false);
    expect(servesInline('application/pdf')).toBe(false);
  });
});

describe('ranges and ETags', () => {
  it('parses single byte ranges', () => {
    expect(parseRange(undefined, 100)).toEqual({ kind: 'full' });
    expect(parseRange('bytes=0-9', 100)).toEqual({ kind: 'partial', range: { start: 0, end: 9 } });
    expect(parseRange('bytes=90-', 100)).toEqual({ kind: 'partial', range: { start: 90, end: 99 } });
    expect(parseRange('bytes=-10', 100)).toEqual({ kind: 'partial', range: { start: 90, end: 99 } });
    expect(parseRange('bytes=50-500', 100)).toEqual({ kind: 'partial', range: { start: 50, end: 99 } });
    expect(parseRange('bytes=100-', 100)).toEqual({ kind: 'unsatisfiable' });
    expect(parseRange('bytes=0-1,5-6', 100)).toEqual({ kind: 'full' });
    expect(parseRange('items=0-1', 100)).toEqual({ kind: 'full' });
  });

  it('matches strong and weak ETags in If-None-Match', () => {
    expect(etagMatches('"abc"', '"abc"')).toBe(true);
    expect(etagMatches('W/"abc", "x"', '"abc"')).toBe(true);
    expect(etagMatches('*', '"abc"')).toBe(true);
    expect(etagMatches('"x"', '"abc"')).toBe(false);
  });
});

describe('clamd replies', () => {
  it('parses clean, infected and error answers; errors never read as clean', () => {
    expect(parseReply('stream: OK\0')).toEqual({ clean: true });
    expect(parseReply('stream: Eicar-Test-Signature FOUND\0')).toEqual({ clean: false, signature: 'Eicar-Test-Signature' });
    expect(() => parseReply('INSTREAM size limit exceeded. ERROR\0')).toThrow(/size limit/);
    expect(() => parseReply('')).toThrow();
  });
});
