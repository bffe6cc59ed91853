"use client";
// Every page's frame: the header (navigation, who is logged in, the STOP controls that are
// always visible to operators), the stale banner while the live socket is down, the login gate.
import Link from "next/link";
import { usePathname, useRouter } from "next/navigation";
import { useEffect, type ReactNode } from "react";
import { can, logout } from "@/api/client";
import { AuthProvider, useAuth } from "@/lib/auth";
import { connectLive, useLive } from "@/lib/live";
import { StopBar } from "./StopBar";

export function Shell({ children }: { children: ReactNode }) {
  return (
    <AuthProvider>
      <Gate>{children}</Gate>
    </AuthProvider>
  );
}

function Gate({ children }: { children: ReactNode }) {
  const { principal, ready } = useAuth();
  const path = usePathname();
  const router = useRouter();
  const onLogin = path.startsWith("/login");

  useEffect(() => {
    if (ready && !principal && !onLogin) router.replace("/login/");
  }, [ready, principal, onLogin, router]);

  useEffect(() => (principal ? connectLive() : undefined), [principal]);

  if (onLogin) return <main className="login-main">{children}</main>;
  if (!ready || !principal) return <p className="muted pad">Checking your login…</p>;
  return (
    <>
      <Header />
      <StaleBanner />
      <main>{children}</main>
    </>
  );
}

const NAV = [
  { href: "/fleet/", label: "Fleet", admin: false },
  { href: "/alerts/", label: "Alerts", admin: false },
  { href: "/models/", label: "Models", admin: false },
  { href: "/audit/", label: "Audit", admin: true },
];

function Header() {
  const { principal } = useAuth();
  const path = usePathname();
  const router = useRouter();
  return (
    <header className="top">
      <strong className="brand">Outpost</strong>
      <nav aria-label="Main">
        {NAV.filter((n) => !n.admin || can(principal, "admin")).map((n) => (
          <Link key={n.href} href={n.href} aria-current={path.startsWith(n.href) ? "page" : undefined}>
            {n.label}
          </Link>
        ))}
      </nav>
      {can(principal, "operator") ? <StopBar /> : <span className="muted">view only</span>}
      <span className="who" data-testid="whoami">
        {principal?.username} ({principal?.role})
      </span>
      <button
        type="button"
        className="link"
        onClick={() => void logout().then(() => router.replace("/login/"))}
      >
        Log out
      </button>
    </header>
  );
}

function StaleBanner() {
  const live = useLive();
  useEffect(() => {
    document.body.classList.toggle("stale", live.status !== "live");
  }, [live.status]);
  if (live.status === "live") return null;
  const retry = live.retryInS !== null ? ` Reconnecting in ${live.retryInS} s.` : " Connecting…";
  return (
    <div role="status" className="banner" data-testid="stale-banner">
      Live updates are down since {new Date(live.since).toLocaleTimeString()}: values shown may be
      stale.{retry}
    </div>
  );
}
