// The session: who is logged in (GET /auth/me), login and logout (ADM-7).
import { useQuery, useQueryClient } from "@tanstack/react-query";
import { createContext, useCallback, useContext, useEffect, type ReactNode } from "react";
import { api, ApiError, csrfToken, onUnauthorized, unwrap, type Schemas } from "./api/client";

export type Me = Schemas["MeOut"];

interface AuthValue {
  me: Me | null;
  loading: boolean;
  login: (login: string, password: string) => Promise<void>;
  logout: () => Promise<void>;
}

const AuthContext = createContext<AuthValue | null>(null);
export const ME_KEY = ["auth", "me"] as const;

async function fetchMe(): Promise<Me | null> {
  try {
    const me = await unwrap(api.GET("/api/v1/auth/me"));
    csrfToken.set(me.csrf_token);
    return me;
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) return null;
    throw err;
  }
}

export function AuthProvider({ children }: { children: ReactNode }) {
  const queryClient = useQueryClient();
  const meQuery = useQuery({ queryKey: ME_KEY, queryFn: fetchMe, staleTime: 60_000, retry: false });

  const dropSession = useCallback(() => {
    csrfToken.set(null);
    queryClient.setQueryData(ME_KEY, null);
    queryClient.removeQueries({ predicate: (q) => q.queryKey[0] !== ME_KEY[0] });
  }, [queryClient]);

  useEffect(() => onUnauthorized(dropSession), [dropSession]);

  const login = useCallback(
    async (login: string, password: string) => {
      const out = await unwrap(api.POST("/api/v1/auth/login", { body: { login, password } }));
      csrfToken.set(out.csrf_token);
      await queryClient.resetQueries({ queryKey: ME_KEY });
    },
    [queryClient],
  );

  const logout = useCallback(async () => {
    try {
      await unwrap(api.POST("/api/v1/auth/logout"));
    } finally {
      dropSession();
    }
  }, [dropSession]);

  const value: AuthValue = {
    me: meQuery.data ?? null,
    loading: meQuery.isPending,
    login,
    logout,
  };
  return <AuthContext.Provider value={value}>{children}</AuthContext.Provider>;
}

export function useAuth(): AuthValue {
  const value = useContext(AuthContext);
  if (!value) throw new Error("useAuth outside AuthProvider");
  return value;
}

/** The logged-in user; only for pages rendered behind the login gate. */
export function useMe(): Me {
  const { me } = useAuth();
  if (!me) throw new Error("useMe without a session");
  return me;
}
