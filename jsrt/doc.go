// Package jsrt runs JavaScript and TypeScript Durable Object classes:
// esbuild (in-process) bundles a module, goja runs it, and every exported
// class extending DurableObject becomes a class of the node runtime with
// a Cloudflare-shaped ctx and env over node.State.
package jsrt
