// Runs the suites that wait for hack/test.sh's background build
// (test/support/prebuilt.ts) after all the others, so that on a cold machine
// the build overlaps the suites that need only the control plane. Within
// each half the default order stays.
import { readFileSync } from 'node:fs';
import { BaseSequencer, type TestSpecification } from 'vitest/node';

const waits = (file: string): boolean => /^await prebuilt\(\);$/m.test(readFileSync(file, 'utf8'));

export default class PrebuiltLastSequencer extends BaseSequencer {
  override async sort(files: TestSpecification[]): Promise<TestSpecification[]> {
    const sorted = await super.sort(files);
    const late = new Set(sorted.filter((f) => waits(f.moduleId)));
    return [...sorted.filter((f) => !late.has(f)), ...sorted.filter((f) => late.has(f))];
  }
}
