// A throwaway CA and a certificate for a domain and its subdomains (openssl),
// for the Gateway's HTTPS listener in tests.
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { workDir } from '../../hack/local/process.js';
import type { KubeClient } from '../../src/core/kube-client.js';

export interface TestCertificate {
  caPem: string;
  certPem: string;
  keyPem: string;
}

export function domainCertificate(domain: string): TestCertificate {
  const dir = workDir('tls');
  const f = (n: string) => path.join(dir, n);
  const run = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
  run('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj', '/CN=familyhub test CA', '-keyout', f('ca.key'), '-out', f('ca.crt'),
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign');
  run('req', '-newkey', 'rsa:2048', '-nodes', '-subj', `/CN=${domain}`, '-keyout', f('tls.key'), '-out', f('tls.csr'));
  writeFileSync(f('ext.cnf'), `subjectAltName=DNS:${domain},DNS:*.${domain}\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n`);
  run('x509', '-req', '-in', f('tls.csr'), '-CA', f('ca.crt'), '-CAkey', f('ca.key'), '-CAcreateserial', '-days', '2', '-extfile', f('ext.cnf'), '-out', f('tls.crt'));
  return { caPem: readFileSync(f('ca.crt'), 'utf8'), certPem: readFileSync(f('tls.crt'), 'utf8'), keyPem: readFileSync(f('tls.key'), 'utf8') };
}

/** A throwaway CA and a server certificate for one IP address (a process on a veth address), as files. */
export function addressCertificate(ip: string): { certFile: string; keyFile: string; caPem: string } {
  const dir = workDir('tls-ip');
  const f = (n: string) => path.join(dir, n);
  const run = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];
  run('req', '-x509', ...ec, '-days', '2', '-subj', '/CN=familyhub test CA', '-keyout', f('ca.key'), '-out', f('ca.crt'),
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign');
  run('req', ...ec, '-subj', `/CN=${ip}`, '-keyout', f('tls.key'), '-out', f('tls.csr'));
  writeFileSync(f('ext.cnf'), `subjectAltName=IP:${ip}\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n`);
  run('x509', '-req', '-in', f('tls.csr'), '-CA', f('ca.crt'), '-CAkey', f('ca.key'), '-CAcreateserial', '-days', '2', '-extfile', f('ext.cnf'), '-out', f('tls.crt'));
  return { certFile: f('tls.crt'), keyFile: f('tls.key'), caPem: readFileSync(f('ca.crt'), 'utf8') };
}

/** The Gateway's HTTPS certificate as the kubernetes.io/tls Secret its listener names (family-tls by default). */
export async function applyTlsSecret(kube: KubeClient, namespace: string, cert: TestCertificate, name = 'family-tls'): Promise<void> {
  await kube.apply({ apiVersion: 'v1', kind: 'Secret', metadata: { name, namespace }, type: 'kubernetes.io/tls',
    data: { 'tls.crt': Buffer.from(cert.certPem).toString('base64'), 'tls.key': Buffer.from(cert.keyPem).toString('base64') } }, { fieldManager: 'e2e-test' });
}
