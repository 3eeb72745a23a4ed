// Types of what a Dura JavaScript class sees, with the names of
// @cloudflare/workers-types, so an editor completes ctx.storage.sql.
// Reference it from tsconfig.json ("files": ["dura.d.ts", ...]) or with
// /// <reference path="dura.d.ts" />. Request, Response, Headers, URL,
// URLSearchParams, TextEncoder/TextDecoder, atob/btoa and console come
// from TypeScript's "DOM" library.

type SqlStorageValue = ArrayBuffer | string | number | null;

interface SqlStorageCursor<T extends Record<string, SqlStorageValue> = Record<string, SqlStorageValue>>
  extends Iterable<T> {
  next(): { done?: false; value: T } | { done: true; value?: never };
  toArray(): T[];
  /** The one row; throws unless there is exactly one. */
  one(): T;
  raw<U extends SqlStorageValue[] = SqlStorageValue[]>(): IterableIterator<U> & { toArray(): U[] };
  readonly columnNames: string[];
  readonly rowsRead: number;
  readonly rowsWritten: number;
  /** Dura: rows the last statement inserted, updated or deleted. */
  readonly changes: number;
}

interface SqlStorage {
  exec<T extends Record<string, SqlStorageValue>>(query: string, ...bindings: any[]): SqlStorageCursor<T>;
  readonly databaseSize: number;
}

interface DurableObjectListOptions {
  start?: string;
  startAfter?: string;
  end?: string;
  prefix?: string;
  reverse?: boolean;
  limit?: number;
}

interface DurableObjectTransaction extends DurableObjectStorage {
  rollback(): void;
}

interface DurableObjectStorage {
  readonly sql: SqlStorage;
  get<T = unknown>(key: string): Promise<T | undefined>;
  get<T = unknown>(keys: string[]): Promise<Map<string, T>>;
  put<T>(key: string, value: T): Promise<void>;
  put<T>(entries: Record<string, T>): Promise<void>;
  delete(key: string): Promise<boolean>;
  delete(keys: string[]): Promise<number>;
  list<T = unknown>(options?: DurableObjectListOptions): Promise<Map<string, T>>;
  deleteAll(): Promise<void>;
  transaction<T>(closure: (txn: DurableObjectTransaction) => Promise<T>): Promise<T>;
  transactionSync<T>(closure: () => T): T;
  getAlarm(): Promise<number | null>;
  getCurrentBookmark(): Promise<string>;
  getBookmarkForTime(timestamp: number | Date): Promise<string>;
  onNextSessionRestoreBookmark(bookmark: string): Promise<string>;
  setAlarm(scheduledTime: number | Date): Promise<void>;
  deleteAlarm(): Promise<void>;
  sync(): Promise<void>;
}

interface DurableObjectId {
  toString(): string;
  equals(other: DurableObjectId): boolean;
  readonly name?: string;
}

interface DurableObjectState {
  readonly id: DurableObjectId;
  readonly storage: DurableObjectStorage;
  blockConcurrencyWhile<T>(callback: () => Promise<T>): Promise<T>;
  waitUntil(promise: Promise<any>): void;
}

/** A stub: fetch, plus every public method of the class as a promise. */
type DurableObjectStub<T = any> = {
  readonly id: DurableObjectId;
  readonly name?: string;
  fetch(input: RequestInfo | URL, init?: RequestInit): Promise<Response>;
} & {
  [K in keyof T as T[K] extends (...args: any[]) => any ? K : never]: T[K] extends (...args: infer A) => infer R
    ? (...args: A) => Promise<Awaited<R>>
    : never;
};

interface DurableObjectNamespace<T = any> {
  idFromName(name: string): DurableObjectId;
  newUniqueId(): DurableObjectId;
  get(id: DurableObjectId): DurableObjectStub<T>;
  getByName(name: string): DurableObjectStub<T>;
}

interface AlarmInvocationInfo {
  readonly retryCount: number;
  readonly isRetry: boolean;
}

/** One binding per registered class, Go or JavaScript, by class name. */
interface Env {
  [className: string]: DurableObjectNamespace;
}

declare abstract class DurableObjectBase<E = Env> {
  protected ctx: DurableObjectState;
  protected env: E;
  constructor(ctx: DurableObjectState, env: E);
  fetch?(request: Request): Response | Promise<Response>;
  alarm?(alarmInfo?: AlarmInvocationInfo): void | Promise<void>;
}

declare module "cloudflare:workers" {
  export abstract class DurableObject<E = Env> extends DurableObjectBase<E> {}
  export abstract class WorkerEntrypoint<E = Env> {
    protected ctx: unknown;
    protected env: E;
  }
  export class RpcTarget {}
}

declare module "dura" {
  export { DurableObject, WorkerEntrypoint, RpcTarget } from "cloudflare:workers";
}

declare interface Crypto {
  randomUUID(): string;
}
