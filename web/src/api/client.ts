// The typed API client (openapi-fetch over the generated schema.d.ts) and a small untyped
// companion for the generic list/form pages, which address resources by URL at run time.
// Both send the session cookie and, on state-changing requests, the CSRF header that
// api/deps.py requires of cookie sessions (ADM-7).
import createClient, { type Middleware } from "openapi-fetch";
import i18n from "../i18n";
import { russianError, russianMessage } from "./errorText";
import type { components, paths } from "./schema";

export type Schemas = components["schemas"];

const CSRF_HEADER = "X-CSRF-Token";
const SAFE_METHODS = new Set(["GET", "HEAD", "OPTIONS"]);

// The session's CSRF token lives in memory only: the login answer gives it, and after a
// reload GET /auth/me gives the same token back for the cookie session (api/routes/auth.py).
// Nothing is written to storage; the session itself is the HttpOnly cookie.
let csrf: string | null = null;
export const csrfToken = {
  get: (): string | null => csrf,
  set: (value: string | null | undefined): void => {
    csrf = value ?? null;
  },
};

export interface ErrorDetail {
  field?: string | null;
  message?: string;
  type?: string | null;
  [key: string]: unknown;
}

function russian(): boolean {
  return i18n.language !== "en";
}

/** A validation detail's message in the UI's language (the server's kept as serverMessage). */
function localizedDetail(d: ErrorDetail): ErrorDetail {
  if (!russian() || typeof d.message !== "string") return d;
  const text = russianMessage(d.message, typeof d.field === "string" ? d.field : null, d.type ?? null);
  return text ? { ...d, message: text, serverMessage: d.message } : d;
}

/** An API error body `{code, message, field, details}` (docs/api.md) with its HTTP status.
 * `message` is in the UI's language for the errors errorText.ts knows (Russian UI), else the
 * server's; `serverMessage` is always the server's. */
export class ApiError extends Error {
  readonly status: number;
  readonly code: string;
  readonly field: string | null;
  readonly details: ErrorDetail[];
  readonly serverMessage: string;

  constructor(status: number, body: unknown) {
    const b = (body ?? {}) as Partial<{ code: string; message: string; field: string | null; details: ErrorDetail[] | null }>;
    const code = b.code || "http_error";
    const server = b.message || `HTTP ${status}`;
    const raw = b.details ?? [];
    super(russian() ? russianError(status, { code, message: server, field: b.field ?? null, details: raw }) : server);
    this.status = status;
    this.code = code;
    this.field = b.field ?? null;
    this.serverMessage = server;
    this.details = code === "validation_error" ? raw.map(localizedDetail) : raw;
  }
}

type Listener = () => void;
const unauthorizedListeners = new Set<Listener>();

/** Called when any request answers 401: the session is gone, show the login page. */
export function onUnauthorized(listener: Listener): () => void {
  unauthorizedListeners.add(listener);
  return () => unauthorizedListeners.delete(listener);
}

function withCsrf(method: string, headers: Headers): void {
  const token = csrfToken.get();
  if (!SAFE_METHODS.has(method.toUpperCase()) && token) headers.set(CSRF_HEADER, token);
}

function notifyIfUnauthorized(status: number, url: string): void {
  if (status === 401 && !url.endsWith("/auth/login")) unauthorizedListeners.forEach((l) => l());
}

const csrfMiddleware: Middleware = {
  onRequest({ request }) {
    withCsrf(request.method, request.headers);
    return request;
  },
  onResponse({ request, response }) {
    notifyIfUnauthorized(response.status, request.url);
    return response;
  },
};

export const api = createClient<paths>({ baseUrl: "", credentials: "same-origin" });
api.use(csrfMiddleware);

/** The data of an openapi-fetch answer, or the ApiError it carried. */
export async function unwrap<T>(
  call: Promise<{ data?: T; error?: unknown; response: Response }>,
): Promise<T> {
  const { data, error, response } = await call;
  if (!response.ok) throw new ApiError(response.status, error);
  return data as T;
}

export type Query = Record<string, string | number | boolean | null | undefined>;

export function withQuery(url: string, query?: Query): string {
  const params = new URLSearchParams();
  Object.entries(query ?? {}).forEach(([k, v]) => {
    if (v !== undefined && v !== null && v !== "") params.set(k, String(v));
  });
  const qs = params.toString();
  return qs ? `${url}?${qs}` : url;
}

function parseJson(text: string): unknown {
  if (!text) return undefined;
  try {
    return JSON.parse(text);
  } catch {
    return { code: "bad_response", message: text.slice(0, 200) };
  }
}

/** An untyped JSON request under /api/v1 for the generic resource pages. */
export async function http<T = unknown>(
  method: string,
  path: string,
  options: { query?: Query; body?: unknown; signal?: AbortSignal } = {},
): Promise<T> {
  const url = withQuery(`/api/v1${path}`, options.query);
  const headers = new Headers({ Accept: "application/json" });
  withCsrf(method, headers);
  if (options.body !== undefined) headers.set("Content-Type", "application/json");
  const response = await fetch(url, {
    method,
    headers,
    credentials: "same-origin",
    body: options.body === undefined ? undefined : JSON.stringify(options.body),
    signal: options.signal,
  });
  notifyIfUnauthorized(response.status, url);
  const json = parseJson(await response.text());
  if (!response.ok) throw new ApiError(response.status, json);
  return json as T;
}

/** A multipart upload with progress (XMLHttpRequest: fetch has no upload progress). */
export function upload<T = unknown>(
  path: string,
  file: File,
  onProgress: (fraction: number) => void,
): Promise<T> {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", `/api/v1${path}`);
    const token = csrfToken.get();
    if (token) xhr.setRequestHeader(CSRF_HEADER, token);
    xhr.upload.onprogress = (e) => e.lengthComputable && onProgress(e.loaded / e.total);
    xhr.onload = () => {
      const json = parseJson(xhr.responseText);
      notifyIfUnauthorized(xhr.status, path);
      if (xhr.status >= 200 && xhr.status < 300) resolve(json as T);
      else reject(new ApiError(xhr.status, json));
    };
    xhr.onerror = () => reject(new ApiError(0, { code: "network", message: "network error" }));
    const form = new FormData();
    form.append("file", file);
    xhr.send(form);
  });
}

export interface Page<T> {
  items: T[];
  total: number;
  limit: number;
  offset: number;
}
