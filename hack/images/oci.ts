// OCI image archives without Docker or a registry: each layer is a plain tar
// of a staged directory, written with the blobs, manifest, config and index an
// OCI image layout needs, then packed into one tar that
// `ctr -n k8s.io images import` accepts. Layers are tarred deterministically
// (sorted names, fixed mtime and owners) so unchanged inputs give unchanged
// digests and containerd keeps what it already has.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, mkdirSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';

export interface ImageConfig {
  Entrypoint?: string[];
  Cmd?: string[];
  User?: string;
  Env?: string[];
  WorkingDir?: string;
}

export interface BuiltImage {
  /** Fully qualified reference, e.g. localhost/familyhub/pause:v1.35.4. */
  ref: string;
  archive: string;
  /** Digest of the image manifest, as containerd reports it. */
  digest: string;
}

function sha256File(file: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const h = createHash('sha256');
    createReadStream(file).on('data', (c) => h.update(c)).on('error', reject).on('end', () => resolve(h.digest('hex')));
  });
}

const sha256 = (data: string | Buffer) => createHash('sha256').update(data).digest('hex');

/** Tars `dir` (its contents at the image root) reproducibly. */
export function tarLayer(dir: string, out: string): void {
  execFileSync('tar', [
    '--sort=name', '--mtime=@0', '--owner=0', '--group=0', '--numeric-owner', '--format=posix',
    '--pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime',
    '-C', dir, '-cf', out, '.',
  ]);
}

/**
 * Writes an OCI layout for `layers` (directories, bottom first) to `out`.
 * The name goes in both annotations containerd's importer reads.
 */
export async function buildOciArchive(ref: string, layers: string[], config: ImageConfig, out: string): Promise<BuiltImage> {
  const work = `${out}.d`;
  rmSync(work, { recursive: true, force: true });
  const blobs = path.join(work, 'blobs', 'sha256');
  mkdirSync(blobs, { recursive: true });
  const layerDescs: Array<{ mediaType: string; digest: string; size: number }> = [];
  const diffIds: string[] = [];
  for (const [i, dir] of layers.entries()) {
    const tmp = path.join(work, `layer-${i}.tar`);
    tarLayer(dir, tmp);
    const digest = await sha256File(tmp);
    const size = statSync(tmp).size;
    renameSync(tmp, path.join(blobs, digest));
    // Uncompressed layers: import is local, gzip would only cost CPU.
    layerDescs.push({ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: `sha256:${digest}`, size });
    diffIds.push(`sha256:${digest}`);
  }
  const blob = (json: unknown) => {
    const data = Buffer.from(JSON.stringify(json));
    const digest = sha256(data);
    writeFileSync(path.join(blobs, digest), data);
    return { digest: `sha256:${digest}`, size: data.length };
  };
  const cfg = blob({
    architecture: 'amd64',
    os: 'linux',
    config,
    rootfs: { type: 'layers', diff_ids: diffIds },
    history: layers.map((l) => ({ created_by: `hack/images: ${path.basename(l)}` })),
  });
  const manifest = blob({
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...cfg },
    layers: layerDescs,
  });
  const tag = ref.slice(ref.lastIndexOf(':') + 1);
  writeFileSync(path.join(work, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  writeFileSync(path.join(work, 'index.json'), JSON.stringify({
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.index.v1+json',
    manifests: [{
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      ...manifest,
      platform: { architecture: 'amd64', os: 'linux' },
      annotations: { 'io.containerd.image.name': ref, 'org.opencontainers.image.ref.name': tag },
    }],
  }));
  execFileSync('tar', ['--sort=name', '--mtime=@0', '--owner=0', '--group=0', '--numeric-owner', '-C', work, '-cf', `${out}.tmp`, 'oci-layout', 'index.json', 'blobs']);
  renameSync(`${out}.tmp`, out);
  rmSync(work, { recursive: true, force: true });
  return { ref, archive: out, digest: manifest.digest };
}
