import { KubeConfig } from '@kubernetes/client-node';

export function load(file: string): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromFile(file);
  return kc;
}
