#!/usr/bin/env node
// kubectl-familyhub: the FamilyHub operator's kubectl plugin. kubectl runs
// any `kubectl-<name>` on PATH for `kubectl <name> …` (bin/kubectl-familyhub
// is that wrapper); it can also be run on its own. Exit codes: 0 success,
// 1 failure (a doctor check, a broken audit chain, a plan kubectl would
// refuse, an error talking to the cluster), 2 usage error.
import { realpathSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { kindFromAlias, connect, parseRef, UsageError, type Target } from './kube.js';
import { styleFor, type Style } from './output.js';

export const USAGE = `kubectl familyhub — status, plans, rotation, audit and checks for the FamilyHub operator

Usage:
  kubectl familyhub status [<kind>/<name>]     conditions and owned objects as a tree; no name: every FamilyHub object
  kubectl familyhub plan <file|->               what applying a Service or Route would do (server-side dry run; writes nothing)
  kubectl familyhub rotate dbc/<name>|oidc/<name> [--no-wait] [--timeout 2m]
                                                new credentials now, then wait for the operator to issue them
  kubectl familyhub audit verify                verify the audit hash chain through the audit service
  kubectl familyhub audit tail [--actor A] [--action X] [--target T] [--limit N] [-f]
  kubectl familyhub doctor [--lease-namespace NS]   what is missing or broken in this cluster, and how to fix it

Kinds: fh (FamilyHub), fhsvc (Service), oidc (OIDCClient), dbc (DatabaseClaim), fhroute (Route).

Flags:
  --kubeconfig FILE     kubeconfig (default: $KUBECONFIG, in-cluster, ~/.kube/config)
  --context NAME        kubeconfig context (default: current-context)
  -n, --namespace NS    namespace (default: the context's, else "default")
  -A, --all-namespaces  status/doctor: every namespace
  -o, --output FORMAT   text (default) or json
  --field-manager NAME  plan: field manager of the dry run (default: kubectl, as kubectl apply --server-side)
  --url URL             audit: service URL (default: the hub's status.endpoints.audit)
  --hub NAME            audit: which FamilyHub's endpoint to use
  --token-file FILE     audit: admin access token (default: $FAMILYHUB_TOKEN)
`;

const OPTIONS = {
  kubeconfig: { type: 'string' },
  context: { type: 'string' },
  namespace: { type: 'string', short: 'n' },
  'all-namespaces': { type: 'boolean', short: 'A' },
  output: { type: 'string', short: 'o' },
  help: { type: 'boolean', short: 'h' },
  'field-manager': { type: 'string' },
  'no-wait': { type: 'boolean' },
  timeout: { type: 'string' },
  url: { type: 'string' },
  hub: { type: 'string' },
  'token-file': { type: 'string' },
  actor: { type: 'string' },
  action: { type: 'string' },
  target: { type: 'string' },
  limit: { type: 'string' },
  follow: { type: 'boolean', short: 'f' },
  'lease-namespace': { type: 'string' },
} as const;

export type Flags = ReturnType<typeof parseCli>['flags'];

export function parseCli(argv: string[]) {
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options: OPTIONS, allowPositionals: true, strict: true });
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  const flags = parsed.values;
  if (flags.output !== undefined && flags.output !== 'json' && flags.output !== 'text') throw new UsageError(`-o ${flags.output}: only text and json are supported`);
  return { flags, positionals: parsed.positionals };
}

/** "90s", "2m", "1h" or plain seconds. */
export function parseTimeout(v: string | undefined, fallbackMs: number): number {
  if (v === undefined) return fallbackMs;
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(v.trim());
  if (!m) throw new UsageError(`--timeout ${v}: use a duration such as 90s, 2m or 1h`);
  const n = Number(m[1]);
  return Math.round(n * ({ ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[m[2] ?? 's'] ?? 1000));
}

interface Io {
  out(s: string): void;
  err(s: string): void;
  st: Style;
  errSt: Style;
  /** stderr is a terminal: progress may redraw one line. */
  errTty: boolean;
}

export async function run(argv: string[], io: Io): Promise<number> {
  const { flags, positionals } = parseCli(argv);
  const [cmd, ...rest] = positionals;
  if (flags.help || !cmd || cmd === 'help') {
    io.out(USAGE.trimEnd());
    return cmd || flags.help ? 0 : 2;
  }
  const json = flags.output === 'json';
  const print = (v: unknown) => io.out(JSON.stringify(v, null, 2));
  let target: Target | undefined;
  const t = async () => (target ??= await connect({ kubeconfig: flags.kubeconfig, context: flags.context, namespace: flags.namespace }));
  const expectArgs = (n: number, what: string) => {
    if (rest.length !== n) throw new UsageError(`usage: kubectl familyhub ${cmd} ${what}`);
  };

  switch (cmd) {
    case 'status': {
      const { objectStatus, renderObjectStatus, summary, renderSummary } = await import('./status.js');
      if (rest.length > 1) throw new UsageError('usage: kubectl familyhub status [<kind>/<name>]');
      if (!rest.length) {
        const tg = await t();
        const all = !!flags['all-namespaces'];
        const s = await summary(tg, all);
        if (json) print(s);
        else io.out(renderSummary(s, io.st, all));
        return 0;
      }
      const ref = parseRef(rest[0]!);
      const tg = await t();
      const s = await objectStatus(tg.kube, ref.kind, tg.namespace, ref.name);
      if (json) print(s);
      else io.out(renderObjectStatus(s, io.st));
      return 0;
    }
    case 'plan': {
      expectArgs(1, '<file|->');
      const { plan, renderPlan } = await import('./plan.js');
      const plans = await plan(await t(), rest[0]!, flags['field-manager']);
      if (json) print(plans);
      else io.out(renderPlan(plans, io.st));
      return plans.some((p) => [p.object, ...p.children].some((l) => l.action === 'Refused' || l.action === 'Conflict')) ? 1 : 0;
    }
    case 'rotate': {
      expectArgs(1, 'dbc/<name>|oidc/<name> [--no-wait]');
      const ref = parseRef(rest[0]!);
      if (ref.kind !== 'DatabaseClaim' && ref.kind !== 'OIDCClient') throw new UsageError(`rotate works on dbc/<name> (DatabaseClaim) and oidc/<name> (OIDCClient), not ${ref.kind}`);
      const { rotate } = await import('./rotate.js');
      const r = await rotate(await t(), ref.kind, ref.name, {
        wait: !flags['no-wait'], timeoutMs: parseTimeout(flags.timeout, 120_000), onProgress: (m) => io.err(m),
      });
      if (json) print(r);
      else if (!r.done) io.out(`${ref.kind} ${r.namespace}/${r.name}: rotation requested (generation ${r.generation}, via ${r.via}); not waiting`);
      else io.out(`${ref.kind} ${r.namespace}/${r.name}: new credentials for generation ${r.generation} in Secret ${r.secretName} (rotated at ${r.rotatedAt}; via ${r.via})`);
      return 0;
    }
    case 'audit': {
      const sub = rest[0];
      const { auditTarget, verify, renderVerify, tail, follow, renderEvents } = await import('./audit.js');
      if (sub !== 'verify' && sub !== 'tail') throw new UsageError('usage: kubectl familyhub audit verify | audit tail [--actor A] [--action X] [--limit N] [-f]');
      if (rest.length !== 1) throw new UsageError(`usage: kubectl familyhub audit ${sub}`);
      const a = await auditTarget({ url: flags.url, tokenFile: flags['token-file'], hub: flags.hub }, t);
      if (sub === 'verify') {
        let drew = false;
        const r = await verify(a, (line, final) => {
          if (io.errTty) {
            io.err(`\r\u001b[2K${line}${final ? '\n' : ''}`);
            drew = !final;
          } else io.err(`${line}\n`);
        });
        if (drew) io.err('\n');
        if (json) print(r);
        else io.out(renderVerify(r, io.st));
        return r.ok ? 0 : 1;
      }
      const limit = flags.limit === undefined ? 20 : Number(flags.limit);
      if (!Number.isInteger(limit) || limit < 1 || limit > 500) throw new UsageError('--limit: a whole number from 1 to 500');
      const q = { actor: flags.actor, action: flags.action, target: flags.target };
      const events = await tail(a, { ...q, limit });
      if (json && !flags.follow) print(events);
      else if (json) for (const e of events) io.out(JSON.stringify(e));
      else io.out(renderEvents(events, io.st));
      if (flags.follow) {
        const ac = new AbortController();
        const stop = () => ac.abort();
        process.once('SIGINT', stop);
        process.once('SIGTERM', stop);
        io.err('following new events (Ctrl-C stops)…');
        await follow(a, q, events.at(-1)?.seq ?? '0', (fresh) => {
          if (json) for (const e of fresh) io.out(JSON.stringify(e));
          else io.out(renderEvents(fresh, io.st, false));
        }, ac.signal);
      }
      return 0;
    }
    case 'doctor': {
      if (rest.length) throw new UsageError('usage: kubectl familyhub doctor');
      const { doctor, renderDoctor, failed } = await import('./doctor.js');
      const tg = await t();
      const checks = await doctor(tg, { allNamespaces: !!flags['all-namespaces'] || !tg.namespaceGiven, leaseNamespace: flags['lease-namespace'] });
      if (json) print({ ok: !failed(checks), checks });
      else io.out(renderDoctor(checks, io.st));
      return failed(checks) ? 1 : 0;
    }
    default:
      if (kindFromAlias(cmd)) throw new UsageError(`unknown command "${cmd}"; did you mean: kubectl familyhub status ${cmd}/<name>?`);
      throw new UsageError(`unknown command "${cmd}"\n\n${USAGE}`);
  }
}

async function main(): Promise<void> {
  const io: Io = {
    out: (s) => process.stdout.write(`${s}\n`),
    err: (s) => process.stderr.write(s.endsWith('\n') || s.startsWith('\r') ? s : `${s}\n`),
    st: styleFor(process.stdout),
    errSt: styleFor(process.stderr),
    errTty: !!process.stderr.isTTY,
  };
  try {
    process.exitCode = await run(process.argv.slice(2), io);
  } catch (e) {
    const usage = e instanceof UsageError;
    process.stderr.write(`error: ${(e as Error).message}\n`);
    process.exitCode = usage ? 2 : 1;
  }
}

// Run only as a program, not when a test imports parseCli/run.
if (process.argv[1] && import.meta.url === pathToFileURL(realpathSync(process.argv[1])).href) void main();
