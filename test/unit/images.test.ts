// hack/images: the project image built without Docker runs the Dockerfile's
// command as the Dockerfile's user, and the OCI archive is what an importer
// checks (content-addressed blobs, diff_ids of the uncompressed layers).
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { dockerfileRuntimeConfig } from '../../hack/images/images.js';
import { buildOciArchive } from '../../hack/images/oci.js';
import { IMAGE_NODE_ARGS } from '../support/operator.js';
import { RUNTIME_COMMAND } from '../../src/controllers/familyhub/runtime.js';

describe('project image config from the Dockerfile', () => {
  it('has the ENTRYPOINT (with the node flags the benches use), USER, WORKDIR and ENV of its last stage', () => {
    const cfg = dockerfileRuntimeConfig();
    expect(cfg.Entrypoint).toEqual(['node', ...IMAGE_NODE_ARGS, 'dist/main.js']);
    expect(cfg.User).toBe('65532:65532');
    expect(cfg.WorkingDir).toBe('/app');
    expect(cfg.Env).toContain('NODE_ENV=production');
  });

  it('the runtime pods the operator creates start node with the entrypoint\'s flags, from its dist/', () => {
    // The Service controller sets the runtime's command itself, so the image's
    // ENTRYPOINT does not reach those pods: the flags must be repeated in step.
    const [node, ...rest] = dockerfileRuntimeConfig().Entrypoint;
    const flags = rest.filter((a) => a.startsWith('-'));
    const script = rest.filter((a) => !a.startsWith('-'));
    expect(RUNTIME_COMMAND[0]).toBe(node);
    expect(RUNTIME_COMMAND.slice(1).filter((a) => a.startsWith('-'))).toEqual(flags);
    expect(path.dirname(script.at(-1)!)).toBe('dist');
    expect(RUNTIME_COMMAND.at(-1)!.startsWith('dist/')).toBe(true);
  });

  it('the chart runs the image\'s entrypoint and user as they are (no command, args or runAsUser override)', () => {
    const tpl = readFileSync(path.join(path.dirname(fileURLToPath(import.meta.url)), '../../charts/familyhub-operator/templates/deployment.yaml'), 'utf8');
    expect(tpl).not.toMatch(/^\s*(command|args|runAsUser|runAsGroup):/m);
    const values = readFileSync(path.join(path.dirname(fileURLToPath(import.meta.url)), '../../charts/familyhub-operator/values.yaml'), 'utf8');
    expect(values).not.toMatch(/^\s*(runAsUser|runAsGroup):/m);
  });

  it('reads only the final stage', () => {
    const cfg = dockerfileRuntimeConfig(['FROM a AS build', 'USER 1', 'WORKDIR /src', 'ENTRYPOINT ["x"]', 'FROM b', 'WORKDIR /w', 'ENV A=1 B=2', 'USER 7:7', 'ENTRYPOINT ["y", "--z"]'].join('\n'));
    expect(cfg).toEqual({ Entrypoint: ['y', '--z'], User: '7:7', WorkingDir: '/w', Env: ['PATH=/usr/local/bin:/usr/bin:/bin', 'A=1', 'B=2'] });
  });

  it('refuses a Dockerfile whose last stage has no exec-form ENTRYPOINT', () => {
    expect(() => dockerfileRuntimeConfig('FROM a\nUSER 1\nWORKDIR /\n')).toThrow(/ENTRYPOINT/);
  });
});

describe('OCI archive', () => {
  it('is an OCI layout whose blobs are named by their digests and whose config lists the layer diff_ids', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'oci-test-'));
    const rootfs = path.join(dir, 'rootfs');
    mkdirSync(path.join(rootfs, 'bin'), { recursive: true });
    writeFileSync(path.join(rootfs, 'bin', 'hello'), 'hi\n');
    const built = await buildOciArchive('localhost/test/hello:t1', [rootfs], { Entrypoint: ['/bin/hello'], User: '1:1' }, path.join(dir, 'img.tar'));
    const out = path.join(dir, 'out');
    mkdirSync(out);
    execFileSync('tar', ['-xf', built.archive, '-C', out]);
    const blob = (d: string) => readFileSync(path.join(out, 'blobs', 'sha256', d.replace('sha256:', '')));
    const digestOf = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;
    const index = JSON.parse(readFileSync(path.join(out, 'index.json'), 'utf8'));
    expect(JSON.parse(readFileSync(path.join(out, 'oci-layout'), 'utf8'))).toEqual({ imageLayoutVersion: '1.0.0' });
    expect(index.manifests[0].annotations['io.containerd.image.name']).toBe('localhost/test/hello:t1');
    expect(index.manifests[0].digest).toBe(built.digest);
    const manifestBlob = blob(built.digest);
    expect(digestOf(manifestBlob)).toBe(built.digest);
    const manifest = JSON.parse(manifestBlob.toString());
    const config = JSON.parse(blob(manifest.config.digest).toString());
    expect(config.config).toEqual({ Entrypoint: ['/bin/hello'], User: '1:1' });
    const layer = blob(manifest.layers[0].digest);
    expect(config.rootfs.diff_ids).toEqual([digestOf(layer)]);
    expect(manifest.layers[0].size).toBe(layer.length);
    const files = execFileSync('tar', ['-tvf', path.join(out, 'blobs', 'sha256', manifest.layers[0].digest.replace('sha256:', ''))], { encoding: 'utf8' });
    expect(files).toMatch(/0\/0 .* \.\/bin\/hello/);
    // Reproducible: the same input gives the same manifest digest.
    const again = await buildOciArchive('localhost/test/hello:t1', [rootfs], { Entrypoint: ['/bin/hello'], User: '1:1' }, path.join(dir, 'img2.tar'));
    expect(again.digest).toBe(built.digest);
  });
});
