// `DATABASE_URL=… tsx src/runtime-services/audit/verify-cli.ts`: recomputes
// the audit hash chain and prints the result as JSON. Exit 0 when intact,
// 2 when a row is broken, 1 when verification could not run.
import pg from 'pg';
import { verifyChain } from './verify.js';

const url = process.env.DATABASE_URL;
if (!url) {
  process.stderr.write('invalid configuration: DATABASE_URL is required but not set\n');
  process.exit(1);
}
const pool = new pg.Pool({ connectionString: url, max: 1 });
try {
  const result = await verifyChain(pool);
  process.stdout.write(`${JSON.stringify(result)}\n`);
  process.exitCode = result.ok ? 0 : 2;
} catch (err) {
  process.stderr.write(`audit verification failed to run: ${(err as Error).message}\n`);
  process.exitCode = 1;
} finally {
  await pool.end();
}
