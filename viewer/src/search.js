// search.js — which functions the search box matches: a case-insensitive substring of the name,
// qualified name or file. Views read the result as a per-function flag array.

export function matchFunctions(model, query) {
  const q = query.trim().toLowerCase();
  if (!q) return null;
  const n = model.fnName.length;
  const hit = new Uint8Array(n);
  let count = 0;
  for (let i = 1; i < n; i++) {
    if (model.fnQual[i].toLowerCase().includes(q) || model.fnName[i].toLowerCase().includes(q) ||
        model.fnFile[i].toLowerCase().includes(q)) {
      hit[i] = 1;
      count++;
    }
  }
  return { hit, count };
}
