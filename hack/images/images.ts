// The images the local node runs, built without Docker:
// - pause: the static pause binary from the kubernetes module (hack/node/build.sh), FROM scratch;
// - the project image (operator + runtime services): the host's node binary and
//   the shared libraries it links, production node_modules, the compiled dist/.
// Entrypoint, user, working directory and environment are read from the
// Dockerfile's final stage, so both ways of building the image run the same
// command as the same user (test/unit/images.test.ts checks the parse).
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, copyFileSync, cpSync, existsSync, mkdirSync, readdirSync, readFileSync, realpathSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildOciArchive, type BuiltImage, type ImageConfig } from './oci.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const cache = process.env.FAMILYHUB_CACHE ?? path.join(os.homedir(), '.cache', 'familyhub');
export const IMAGE_REPO = 'localhost/familyhub/operator';

/** USER, WORKDIR, ENV and ENTRYPOINT of the Dockerfile's last stage. */
export function dockerfileRuntimeConfig(dockerfile = readFileSync(path.join(root, 'Dockerfile'), 'utf8')): Required<Pick<ImageConfig, 'Entrypoint' | 'User' | 'Env' | 'WorkingDir'>> {
  const stages = dockerfile.split(/^FROM .*$/m);
  const last = stages.at(-1) ?? '';
  const directive = (name: string) => [...last.matchAll(new RegExp(`^${name}\\s+(.+)$`, 'gm'))].map((m) => m[1]!.trim());
  const entry = directive('ENTRYPOINT').at(-1);
  const user = directive('USER').at(-1);
  const workdir = directive('WORKDIR').at(-1);
  if (!entry || !user || !workdir) throw new Error('Dockerfile: the last stage needs ENTRYPOINT (exec form), USER and WORKDIR');
  const env = directive('ENV').flatMap((line) => line.split(/\s+/)).filter((kv) => kv.includes('='));
  return {
    Entrypoint: JSON.parse(entry) as string[],
    User: user,
    // node images put node in /usr/local/bin; so does this one.
    Env: ['PATH=/usr/local/bin:/usr/bin:/bin', ...env],
    WorkingDir: workdir,
  };
}

export function nodeBinaries(): Record<string, string> {
  const out = execFileSync('bash', [path.join(root, 'hack/node/build.sh'), 'all'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
  return Object.fromEntries(out.trim().split('\n').map((l) => l.split(' ') as [string, string]));
}

export async function buildPauseImage(pauseBinary: string): Promise<BuiltImage> {
  const version = path.basename(path.dirname(pauseBinary)).replace(/^pause-/, '');
  const ref = `localhost/familyhub/pause:${version}`;
  const dir = path.join(cache, 'images', `pause-${version}`);
  const archive = path.join(dir, 'pause.oci.tar');
  const rootfs = path.join(dir, 'rootfs');
  rmSync(rootfs, { recursive: true, force: true });
  mkdirSync(rootfs, { recursive: true });
  copyFileSync(pauseBinary, path.join(rootfs, 'pause'));
  chmodSync(path.join(rootfs, 'pause'), 0o755);
  return buildOciArchive(ref, [rootfs], { Entrypoint: ['/pause'], User: '65535:65535' }, archive);
}

function hashTree(h: ReturnType<typeof createHash>, p: string): void {
  const st = statSync(p);
  if (st.isDirectory()) {
    for (const e of readdirSync(p).sort()) hashTree(h, path.join(p, e));
  } else {
    h.update(p.slice(root.length)).update('\0').update(readFileSync(p)).update('\0');
  }
}

/** The host's node and every shared library it loads, at the same paths. */
/** `*.node` files under node_modules (a few levels deep: packages and their lib/build folders). */
function nativeAddons(dir: string, depth = 0): string[] {
  if (depth > 5 || !existsSync(dir)) return [];
  const out: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory() && !e.isSymbolicLink()) out.push(...nativeAddons(p, depth + 1));
    else if (e.isFile() && e.name.endsWith('.node')) out.push(p);
  }
  return out;
}

function stageBase(dir: string, user: string): void {
  const node = realpathSync(process.execPath);
  const [uid, gid] = user.split(':');
  mkdirSync(path.join(dir, 'usr/local/bin'), { recursive: true });
  copyFileSync(node, path.join(dir, 'usr/local/bin/node'));
  chmodSync(path.join(dir, 'usr/local/bin/node'), 0o755);
  // The system libraries node links, and those the native addons in
  // node_modules link (sharp's libvips needs libresolv, which node does not);
  // libraries an addon brings in its own package stay with the package.
  const linked = new Set<string>();
  for (const bin of [node, ...nativeAddons(path.join(root, 'node_modules'))]) {
    const ldd = execFileSync('ldd', [bin], { encoding: 'utf8' });
    for (const m of ldd.matchAll(/(\/\S+) \(0x/g)) if (!m[1]!.includes('/node_modules/')) linked.add(m[1]!);
  }
  for (const lib of linked) {
    const dest = path.join(dir, lib);
    mkdirSync(path.dirname(dest), { recursive: true });
    copyFileSync(realpathSync(lib), dest);
  }
  mkdirSync(path.join(dir, 'etc'), { recursive: true });
  writeFileSync(path.join(dir, 'etc/passwd'), `root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:${uid}:${gid ?? uid}:nonroot:/home/nonroot:/sbin/nologin\n`);
  writeFileSync(path.join(dir, 'etc/group'), `root:x:0:\nnonroot:x:${gid ?? uid}:\n`);
  // Name lookups in pods (cluster DNS) go through /etc/resolv.conf, which the
  // kubelet mounts; glibc needs nsswitch to consult files then DNS.
  writeFileSync(path.join(dir, 'etc/nsswitch.conf'), 'hosts: files dns\n');
  mkdirSync(path.join(dir, 'tmp'), { recursive: true });
  chmodSync(path.join(dir, 'tmp'), 0o1777);
}

/**
 * The project image, as the Dockerfile would build it, tagged by the digest
 * of its content (never `latest`, so IfNotPresent always picks this build).
 * Copies the production node_modules (cached by package-lock.json) and runs
 * tsc (cached by the sources).
 * `from: 'head'` compiles the committed sources (git HEAD) rather than the
 * working tree: tests then do not depend on someone's half-done edit.
 */
export async function buildProjectImage(opts: { from?: 'worktree' | 'head' } = {}): Promise<BuiltImage> {
  const from = opts.from ?? 'worktree';
  const cfg = dockerfileRuntimeConfig();
  const lock = readFileSync(path.join(root, 'package-lock.json'));
  const depsKey = createHash('sha256').update(lock).update(process.version).digest('hex').slice(0, 16);
  const srcFiles = ['src', 'tsconfig.json', 'tsconfig.build.json', 'package.json'];
  const srcHash = createHash('sha256');
  if (from === 'head') srcHash.update(execFileSync('git', ['rev-parse', ...srcFiles.map((f) => `HEAD:${f}`)], { cwd: root }));
  else for (const f of srcFiles) hashTree(srcHash, path.join(root, f));
  const appKey = srcHash.digest('hex').slice(0, 16);
  // 'addon-libs': bases staged before the addons' libraries were included are not reused.
  const baseKey = createHash('sha256').update(process.version).update(cfg.User).update('addon-libs').digest('hex').slice(0, 16);
  const images = path.join(cache, 'images');
  const appDir = cfg.WorkingDir.replace(/^\//, '');

  const base = path.join(images, `operator-base-${baseKey}`);
  if (!existsSync(path.join(base, '.done'))) {
    rmSync(base, { recursive: true, force: true });
    stageBase(path.join(base, 'rootfs'), cfg.User);
    writeFileSync(path.join(base, '.done'), '');
  }
  const deps = path.join(images, `operator-deps-${depsKey}`);
  if (!existsSync(path.join(deps, '.done'))) {
    rmSync(deps, { recursive: true, force: true });
    const app = path.join(deps, 'rootfs', appDir);
    mkdirSync(app, { recursive: true });
    // The production subset of the installed node_modules (what `npm prune
    // --omit=dev` would keep), copied rather than installed again.
    // npm ls exits non-zero on any peer-dependency complaint; the list is still complete.
    const ls = spawnSync('npm', ['ls', '--omit=dev', '--all', '--parseable'], { cwd: root, encoding: 'utf8', maxBuffer: 16 * 1024 * 1024 });
    const listed = ls.stdout.trim().split('\n');
    if (listed.length < 2) throw new Error(`npm ls --omit=dev listed no packages: ${ls.stderr}`);
    const rel = listed.map((p) => path.relative(root, p)).filter((p) => p.startsWith('node_modules')).sort();
    let last = '';
    for (const p of rel) {
      if (last && p.startsWith(`${last}/`)) continue;
      cpSync(path.join(root, p), path.join(app, p), { recursive: true, verbatimSymlinks: true });
      last = p;
    }
    writeFileSync(path.join(deps, '.done'), '');
  }
  const appLayer = path.join(images, `operator-app-${appKey}`);
  if (!existsSync(path.join(appLayer, '.done'))) {
    rmSync(appLayer, { recursive: true, force: true });
    const app = path.join(appLayer, 'rootfs', appDir);
    mkdirSync(app, { recursive: true });
    let project = root;
    if (from === 'head') {
      project = path.join(appLayer, 'src-head');
      mkdirSync(project, { recursive: true });
      execFileSync('sh', ['-c', `git archive HEAD ${srcFiles.join(' ')} | tar -x -C "${project}"`], { cwd: root });
      symlinkSync(path.join(root, 'node_modules'), path.join(project, 'node_modules'));
    }
    try {
      execFileSync(path.join(root, 'node_modules/.bin/tsc'), ['-p', path.join(project, 'tsconfig.build.json'), '--outDir', path.join(app, 'dist')], { cwd: project, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    } catch (err) {
      throw new Error(`compiling the operator for its image (${from}) failed:\n${(err as { stdout?: string }).stdout ?? String(err)}`);
    }
    copyFileSync(path.join(project, 'package.json'), path.join(app, 'package.json'));
    if (from === 'head') rmSync(project, { recursive: true, force: true });
    writeFileSync(path.join(appLayer, '.done'), '');
  }
  const tag = `dev-${createHash('sha256').update(baseKey + depsKey + appKey).digest('hex').slice(0, 12)}`;
  const ref = `${IMAGE_REPO}:${tag}`;
  const archive = path.join(images, `operator-${tag}.oci.tar`);
  if (existsSync(`${archive}.json`)) return JSON.parse(readFileSync(`${archive}.json`, 'utf8')) as BuiltImage;
  const layers = [path.join(base, 'rootfs'), path.join(deps, 'rootfs'), path.join(appLayer, 'rootfs')];
  const built = await buildOciArchive(ref, layers, cfg, archive);
  writeFileSync(`${archive}.json`, JSON.stringify(built));
  return built;
}
