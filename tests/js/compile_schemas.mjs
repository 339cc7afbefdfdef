// Compile JSON Schemas with AJV 8 the way Sockethub clients do, and validate samples.
//
// stdin:  {"schemas": {"<name>": <schema>, ...}, "samples": [{"schema": "<name>", "data": ...}]}
// stdout: {"ajv": "<version>",
//          "compiled": {"<mode>": {"<name>": {"ok": bool, "error": str|null, "warnings": [str]}}},
//          "samples": [{"valid": bool, "errors": [{instancePath, keyword, message, params}]}]}
//
// Modes: "sockethub" is @sockethub/schemas' validator ({strictTypes: false, allErrors: true}
// plus ajv-formats); "strict" is AJV's full strict mode, which also fails on type and tuple
// warnings. Samples are validated in "sockethub" mode.
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import Ajv from "ajv";
import addFormats from "ajv-formats";

const require = createRequire(import.meta.url);
const MODES = {
  sockethub: { strictTypes: false, allErrors: true },
  strict: { strict: true, allErrors: true },
};

function newAjv(options, warnings) {
  const logger = {
    log: () => {},
    warn: (...args) => warnings.push(args.join(" ")),
    error: (...args) => warnings.push(args.join(" ")),
  };
  const ajv = new Ajv({ ...options, logger });
  addFormats(ajv);
  return ajv;
}

const input = JSON.parse(readFileSync(0, "utf8"));
const compiled = {};
const validators = {};
for (const [mode, options] of Object.entries(MODES)) {
  compiled[mode] = {};
  for (const [name, schema] of Object.entries(input.schemas)) {
    const warnings = [];
    const ajv = newAjv(options, warnings);
    try {
      const validate = ajv.compile(schema);
      compiled[mode][name] = { ok: true, error: null, warnings };
      if (mode === "sockethub") validators[name] = validate;
    } catch (err) {
      compiled[mode][name] = { ok: false, error: String(err.message ?? err), warnings };
    }
  }
}

const samples = (input.samples ?? []).map(({ schema, data }) => {
  const validate = validators[schema];
  if (!validate) return { valid: null, errors: [] };
  const valid = validate(data);
  const errors = (validate.errors ?? []).map(({ instancePath, keyword, message, params }) => ({
    instancePath,
    keyword,
    message,
    params,
  }));
  return { valid, errors };
});

const ajvVersion = require("ajv/package.json").version;
process.stdout.write(JSON.stringify({ ajv: ajvVersion, compiled, samples }));
