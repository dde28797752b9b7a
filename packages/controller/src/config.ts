/** nodes.json and projects.json: their schema, loading them, and finding what a command names in them. */
export * from './config/schema.js';
export * from './config/load.js';
export * from './config/lookup.js';
