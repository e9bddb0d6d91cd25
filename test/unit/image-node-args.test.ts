// Benchmarks run the compiled operator with the image's node flags; if the
// Dockerfile changes them, the RSS figures would describe a different
// configuration than the one shipped.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { IMAGE_NODE_ARGS } from '../support/operator.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

describe('operator image node flags', () => {
  it('are the ones the benches and e2e suites run the compiled operator with', () => {
    const dockerfile = readFileSync(path.join(root, 'Dockerfile'), 'utf8');
    const entry = /^ENTRYPOINT (\[.*\])$/m.exec(dockerfile)?.[1];
    expect(entry).toBeDefined();
    expect(JSON.parse(entry!)).toEqual(['node', ...IMAGE_NODE_ARGS, 'dist/main.js']);
  });
});
