// The typed hub API client: openapi-fetch over the schema generated from the hub's OpenAPI.
// Access tokens ride in `Authorization`; a 401 triggers one refresh (shared by concurrent
// requests) and one retry; a failed refresh logs the user out.
import createClient from "openapi-fetch";
import type { components, paths } from "./schema";

export type Schemas = components["schemas"];
export type Device = Schemas["DeviceOut"];
export type Site = Schemas["SiteOut"];
export type SiteLayout = Schemas["SiteLayout"];
export type Command = Schemas["CommandOut"];
export type Principal = Schemas["PrincipalOut"];
export type Role = Schemas["Role"];

export interface Tokens {
  access: string;
  refresh: string;
}

const KEY = "outpost.tokens";
type Listener = (tokens: Tokens | null) => void;
const listeners = new Set<Listener>();
let refreshing: Promise<boolean> | null = null;

export function loadTokens(): Tokens | null {
  if (typeof window === "undefined") return null;
  const raw = window.localStorage.getItem(KEY);
  if (!raw) return null;
  try {
    const parsed = JSON.parse(raw) as Partial<Tokens>;
    return parsed.access && parsed.refresh ? { access: parsed.access, refresh: parsed.refresh } : null;
  } catch {
    return null;
  }
}

export function saveTokens(tokens: Tokens | null): void {
  if (tokens) window.localStorage.setItem(KEY, JSON.stringify(tokens));
  else window.localStorage.removeItem(KEY);
  for (const listener of listeners) listener(tokens);
}

/** Called with the new tokens (or null on logout / a failed refresh). */
export function onTokens(listener: Listener): () => void {
  listeners.add(listener);
  return () => listeners.delete(listener);
}

async function refreshTokens(): Promise<boolean> {
  const current = loadTokens();
  if (!current) return false;
  const res = await fetch("/api/v1/auth/refresh", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ refresh_token: current.refresh }),
  });
  if (!res.ok) {
    saveTokens(null);
    return false;
  }
  const body = (await res.json()) as Schemas["TokenResponse"];
  saveTokens({ access: body.access_token, refresh: body.refresh_token });
  return true;
}

/** One refresh at a time: concurrent 401s wait for the same one. */
export function refreshOnce(): Promise<boolean> {
  refreshing ??= refreshTokens().finally(() => {
    refreshing = null;
  });
  return refreshing;
}

function authorised(request: Request): Request {
  const tokens = loadTokens();
  if (!tokens) return request;
  const headers = new Headers(request.headers);
  headers.set("Authorization", `Bearer ${tokens.access}`);
  return new Request(request, { headers });
}

async function authFetch(request: Request): Promise<Response> {
  const retry = request.clone();
  const res = await fetch(authorised(request));
  const isAuthCall = new URL(request.url).pathname.startsWith("/api/v1/auth/login");
  if (res.status !== 401 || isAuthCall || !loadTokens()) return res;
  return (await refreshOnce()) ? fetch(authorised(retry)) : res;
}

export const api = createClient<paths>({ baseUrl: "", fetch: authFetch });

/** A binary resource of the hub (a snapshot JPEG) as an object URL; revoke it when done. */
export async function objectUrl(path: string): Promise<string | null> {
  const res = await authFetch(new Request(new URL(path, window.location.origin)));
  return res.ok ? URL.createObjectURL(await res.blob()) : null;
}

/** The hub's error body as one line for the UI. */
export function errorText(error: unknown): string {
  if (!error || typeof error !== "object") return String(error ?? "request failed");
  const detail = (error as { detail?: unknown }).detail;
  if (Array.isArray(detail)) {
    return detail.map((d: { loc?: unknown[]; msg?: string }) => `${(d.loc ?? []).join(".")}: ${d.msg}`).join("; ");
  }
  if (detail && typeof detail === "object" && "message" in detail) return String(detail.message);
  return JSON.stringify(error).slice(0, 200);
}

export async function login(username: string, password: string): Promise<string | null> {
  const { data, error, response } = await api.POST("/api/v1/auth/login", {
    body: { username, password },
  });
  if (data) {
    saveTokens({ access: data.access_token, refresh: data.refresh_token });
    return null;
  }
  if (response.status === 429) return "Too many failed attempts; wait a moment and try again.";
  return response.status === 401 ? "Wrong username or password." : errorText(error);
}

export async function logout(): Promise<void> {
  const tokens = loadTokens();
  if (tokens) await api.POST("/api/v1/auth/logout", { body: { refresh_token: tokens.refresh } }).catch(() => undefined);
  saveTokens(null);
}

export const ROLE_RANK: Record<Role, number> = { viewer: 0, operator: 1, admin: 2 };

export function can(principal: Principal | null, role: Role): boolean {
  return principal !== null && ROLE_RANK[principal.role] >= ROLE_RANK[role];
}
