// Validates the manifests in deploy/kubernetes: every object against the
// Kubernetes API schema of its kind (the kubernetes-models package, generated
// from the Kubernetes OpenAPI specification: types, formats, required
// fields), and against its TypeScript interface from the same package, which
// refuses unknown fields (a misspelt key is otherwise silently ignored by the
// API server's client-side tools); then what the schemas cannot know: the probes hit /ready and /health, the grace period outlasts the
// preStop pause plus the drain, the Service and PodDisruptionBudget select the
// pods, and wsrelay accepts the configuration the Deployment gives it.
//
// Usage: node check-kubernetes.mjs path/to/wsrelay
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';

const here = path.dirname(fileURLToPath(import.meta.url));
const dir = path.join(here, 'kubernetes');
const bin = process.argv[2];
let failed = 0;
const fail = (msg) => {
  console.log(`  FAIL ${msg}`);
  failed++;
};

// apiVersion to the kubernetes-models module: "v1" is core, "apps/v1" apps.
const modulePath = (apiVersion) => `kubernetes-models/${apiVersion}`;

const objects = [];
for (const file of readdirSync(dir).filter((f) => f.endsWith('.yaml')).sort()) {
  if (file === 'kustomization.yaml') continue;
  const docs = parseAllDocuments(readFileSync(path.join(dir, file), 'utf8'));
  for (const doc of docs) {
    if (doc.errors.length) {
      fail(`${file}: ${doc.errors[0].message}`);
      continue;
    }
    const obj = doc.toJS();
    if (!obj) continue;
    const where = `${file}: ${obj.kind} ${obj.metadata?.name}`;
    let Model;
    try {
      Model = (await import(modulePath(obj.apiVersion)))[obj.kind];
    } catch {
      Model = undefined;
    }
    if (!Model) {
      fail(`${where}: unknown apiVersion ${obj.apiVersion} or kind ${obj.kind}`);
      continue;
    }
    try {
      new Model(obj).validate();
      console.log(`  ok ${where}`);
    } catch (err) {
      fail(`${where}: ${err.message}`);
    }
    objects.push({ file, obj });
  }
}

// Unknown fields: each object as a literal of its kind's interface; tsc's
// excess property check names any key the API does not have.
{
  const tmp = mkdtempSync(path.join(here, '.k8s-types-'));
  try {
    const files = objects.map(({ file, obj }, i) => {
      const name = path.join(tmp, `${file.replace(/\.yaml$/, '')}-${obj.kind}-${obj.metadata?.name}-${i}.ts`);
      writeFileSync(name, `import type { I${obj.kind} as T } from '${modulePath(obj.apiVersion)}/${obj.kind}';\n` +
        `export const manifest: T = ${JSON.stringify(obj, null, 2)};\n`);
      return name;
    });
    const tsc = path.join(here, 'node_modules', 'typescript', 'bin', 'tsc');
    try {
      execFileSync(process.execPath, [tsc, '--noEmit', '--strict', '--skipLibCheck', '--module', 'nodenext',
        '--moduleResolution', 'nodenext', '--target', 'es2022', ...files], { cwd: tmp, stdio: ['ignore', 'pipe', 'pipe'] });
      console.log(`  ok no unknown fields in ${files.length} objects`);
    } catch (err) {
      const out = String(err.stdout || '') + String(err.stderr || '');
      for (const line of out.split('\n').filter((l) => l.includes('error TS'))) fail(line.trim());
      if (!out.includes('error TS')) fail(`tsc: ${out.trim() || err.message}`);
    }
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

const find = (kind, name) => objects.find((o) => o.obj.kind === kind && o.obj.metadata.name === name)?.obj;
const matches = (selector, labels) => Object.entries(selector || {}).every(([k, v]) => labels?.[k] === v);
const seconds = (d) => {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m)$/.exec(d || '');
  if (!m) return NaN;
  return Number(m[1]) * { ms: 0.001, s: 1, m: 60 }[m[2]];
};

const deploy = find('Deployment', 'wsrelay');
if (!deploy) {
  fail('no Deployment wsrelay');
} else {
  const pod = deploy.spec.template;
  const c = pod.spec.containers.find((x) => x.name === 'wsrelay');
  const env = Object.fromEntries((c.env || []).filter((e) => 'value' in e).map((e) => [e.name, e.value]));
  const portOf = (p) => (typeof p === 'number' ? p : c.ports.find((x) => x.name === p)?.containerPort);
  const listen = Number((env.WSRELAY_ADDR || ':8080').split(':').pop());

  if (c.readinessProbe?.httpGet?.path !== '/ready') fail('the readiness probe must GET /ready (503 while draining or full)');
  if (c.livenessProbe?.httpGet?.path !== '/health') fail('the liveness probe must GET /health');
  for (const [name, probe] of [['readiness', c.readinessProbe], ['liveness', c.livenessProbe]]) {
    if (probe && portOf(probe.httpGet.port) !== listen) fail(`the ${name} probe's port is not WSRELAY_ADDR's ${listen}`);
  }
  const pause = c.lifecycle?.preStop?.sleep?.seconds ?? 0;
  if (pause < 1) fail('a preStop pause must let load balancers stop sending new connections before the drain');
  const drain = seconds(env.WSRELAY_SHUTDOWN_TIMEOUT || '10s');
  const grace = pod.spec.terminationGracePeriodSeconds ?? 30;
  if (!(grace > pause + drain)) {
    fail(`terminationGracePeriodSeconds ${grace} must exceed the preStop pause ${pause} s plus WSRELAY_SHUTDOWN_TIMEOUT ${drain} s`);
  } else {
    console.log(`  ok grace period ${grace} s > preStop ${pause} s + drain ${drain} s`);
  }
  if (!matches(deploy.spec.selector.matchLabels, pod.metadata.labels)) fail('the Deployment selector does not match its pods');

  const svc = find('Service', 'wsrelay');
  if (!svc) fail('no Service wsrelay');
  else {
    if (!matches(svc.spec.selector, pod.metadata.labels)) fail('the Service does not select the wsrelay pods');
    for (const p of svc.spec.ports) {
      if (portOf(p.targetPort ?? p.port) !== listen) fail(`Service port ${p.name} does not reach WSRELAY_ADDR's ${listen}`);
    }
  }
  const pdb = find('PodDisruptionBudget', 'wsrelay');
  if (!pdb) fail('no PodDisruptionBudget wsrelay');
  else if (!matches(pdb.spec.selector.matchLabels, pod.metadata.labels)) fail('the PodDisruptionBudget does not select the wsrelay pods');

  // wsrelay itself checks the configuration, as it would at start.
  if (bin) {
    const vars = { ...env, WSRELAY_NODE_ID: 'wsrelay-5d8f7c9b4-x2x7k' };
    try {
      execFileSync(bin, ['--print-config'], { env: { PATH: process.env.PATH, ...vars }, stdio: ['ignore', 'ignore', 'pipe'] });
      console.log('  ok wsrelay --print-config accepts the Deployment\'s environment');
    } catch (err) {
      fail(`wsrelay refuses the Deployment's environment: ${String(err.stderr).trim()}`);
    }
  }
}

if (failed) {
  console.log(`${failed} problem(s) in deploy/kubernetes`);
  process.exit(1);
}
