import { defineConfig } from 'vitest/config';
import PrebuiltLastSequencer from './test/support/sequencer.js';

// Two projects: `unit` (pure logic, fakes allowed) and `e2e` (real
// kube-apiserver, PostgreSQL, Redis, OpenBao, IdPs, clamd started by
// test/support). e2e files run one at a time: the machine has two cores and
// each file brings up real servers.
export default defineConfig({
  test: {
    // Suites that wait for hack/test.sh's background build run last (test/support/prebuilt.ts).
    sequence: { sequencer: PrebuiltLastSequencer },
    projects: [
      {
        test: {
          name: 'unit',
          include: ['test/unit/**/*.test.ts'],
          testTimeout: 20_000,
        },
      },
      {
        test: {
          name: 'e2e',
          include: ['test/e2e/**/*.test.ts'],
          fileParallelism: false,
          testTimeout: 180_000,
          hookTimeout: 240_000,
        },
      },
    ],
  },
});
