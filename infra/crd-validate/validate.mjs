// Validates custom resources against their operators' CRD schemas.
//
//   node validate.mjs <node_modules dir>  < docs.json  > result.json
//
// stdin: a JSON list of objects (the custom resources of one rendered example). stdout: a JSON
// list, one entry per object: {"name", "ok", "errors"}; an apiVersion/kind with no validator is
// an error, never a skip. The validators are the @kubernetes-models packages pinned in
// package.json/package-lock.json, generated from the upstream CRDs' openAPIV3Schema (types,
// enums, patterns, required fields, bounds). infra/chart_policy.py runs this script.
import { readFileSync, existsSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

const modules = process.argv[2];
// group -> npm package holding its models.
const PACKAGES = {
  "kafka.strimzi.io": "@kubernetes-models/strimzi-kafka-operator",
  "postgresql.cnpg.io": "@kubernetes-models/cloudnative-pg",
  "monitoring.coreos.com": "@kubernetes-models/prometheus-operator",
};

const docs = JSON.parse(readFileSync(0, "utf8"));
const results = [];
for (const doc of docs) {
  const name = `${doc.apiVersion} ${doc.kind}/${doc.metadata?.name}`;
  const [group, version] = String(doc.apiVersion).split("/");
  const pkg = PACKAGES[group];
  const file = pkg && join(modules, pkg, group, version ?? "", `${doc.kind}.js`);
  if (!file || !existsSync(file)) {
    results.push({ name, ok: false, errors: [`no CRD schema for ${doc.apiVersion} ${doc.kind}`] });
    continue;
  }
  const mod = await import(pathToFileURL(file).href);
  const Model = mod[doc.kind];
  try {
    new Model(doc).validate();
    results.push({ name, ok: true, errors: [] });
  } catch (err) {
    results.push({ name, ok: false, errors: [String(err.message ?? err)] });
  }
}
process.stdout.write(JSON.stringify(results));
