/**
 * sorted-btree's `BTree` class. The package is CommonJS with an ES-style default export: Node,
 * and bundlers in Node's mode, make `module.exports` the default import; other loaders unwrap it
 * once more. A plain import (no `createRequire`) keeps the driver loadable in browsers.
 */
import * as sortedBtree from "sorted-btree";

type BTreeClass = typeof sortedBtree.default.default;

const exported = sortedBtree.default as unknown as BTreeClass | { default: BTreeClass };

export const BTree: BTreeClass = "default" in exported ? exported.default : exported;
