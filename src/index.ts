export * from "./api.js";
export { type OpenKvOptions, openKv } from "./open.js";
export * from "./typed/index.js";
