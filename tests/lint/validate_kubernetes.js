// Validates Kubernetes manifests offline against the Kubernetes (and Prometheus Operator) schemas,
// with the models of the npm packages kubernetes-models and @kubernetes-models/prometheus-operator.
//   node validate_kubernetes.js FILE...   (NODE_PATH: where those packages are installed)
// Prints "ok - FILE: Kind/name" per object or "not ok - ..." with the schema's complaint; exit 1
// if any object fails.
'use strict';
const fs = require('fs');
const YAML = require('yaml');

const models = {
  'v1': () => require('kubernetes-models/v1'),
  'apps/v1': () => require('kubernetes-models/apps/v1'),
  'monitoring.coreos.com/v1': () => require('@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1'),
};

let failed = 0;
for (const file of process.argv.slice(2)) {
  const docs = YAML.parseAllDocuments(fs.readFileSync(file, 'utf8'));
  for (const doc of docs) {
    if (doc.errors.length) {
      console.log(`not ok - ${file}: ${doc.errors[0].message}`);
      failed++;
      continue;
    }
    const obj = doc.toJS();
    if (obj === null) continue;
    const where = `${file}: ${obj.kind}/${obj.metadata && obj.metadata.name}`;
    const group = models[obj.apiVersion];
    const Model = group && group()[obj.kind];
    if (!Model) {
      console.log(`not ok - ${where}: no schema for ${obj.apiVersion} ${obj.kind}`);
      failed++;
      continue;
    }
    try {
      new Model(obj).validate();
      console.log(`ok - ${where}`);
    } catch (e) {
      console.log(`not ok - ${where}: ${e.message.split('\n').slice(0, 6).join(' | ')}`);
      failed++;
    }
  }
}
process.exit(failed ? 1 : 0);
