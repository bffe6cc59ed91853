"use client";
// Who is logged in: the principal from GET /api/v1/auth/me, refreshed when the tokens change.
import { createContext, useCallback, useContext, useEffect, useState, type ReactNode } from "react";
import { api, loadTokens, onTokens, type Principal } from "@/api/client";

interface AuthState {
  principal: Principal | null;
  ready: boolean;
  reload: () => Promise<void>;
}

const AuthContext = createContext<AuthState>({ principal: null, ready: false, reload: async () => {} });

export function AuthProvider({ children }: { children: ReactNode }) {
  const [principal, setPrincipal] = useState<Principal | null>(null);
  const [ready, setReady] = useState(false);

  const reload = useCallback(async () => {
    if (!loadTokens()) {
      setPrincipal(null);
      setReady(true);
      return;
    }
    const { data } = await api.GET("/api/v1/auth/me").catch(() => ({ data: undefined }));
    setPrincipal(data ?? null);
    setReady(true);
  }, []);

  useEffect(() => {
    void reload();
    return onTokens((tokens) => {
      if (!tokens) setPrincipal(null);
    });
  }, [reload]);

  return <AuthContext.Provider value={{ principal, ready, reload }}>{children}</AuthContext.Provider>;
}

export function useAuth(): AuthState {
  return useContext(AuthContext);
}
