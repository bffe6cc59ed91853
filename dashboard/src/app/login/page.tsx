"use client";
import { useRouter } from "next/navigation";
import { useState, type FormEvent } from "react";
import { login } from "@/api/client";
import { useAuth } from "@/lib/auth";

export default function LoginPage() {
  const router = useRouter();
  const { reload } = useAuth();
  const [error, setError] = useState("");
  const [busy, setBusy] = useState(false);

  const submit = async (event: FormEvent<HTMLFormElement>) => {
    event.preventDefault();
    const form = new FormData(event.currentTarget);
    setBusy(true);
    const failure = await login(String(form.get("username")), String(form.get("password")));
    setBusy(false);
    if (failure) {
      setError(failure);
      return;
    }
    await reload();
    router.replace("/fleet/");
  };

  return (
    <form className="card login" onSubmit={(e) => void submit(e)}>
      <h1>Outpost</h1>
      <label>
        Username
        <input name="username" autoComplete="username" required autoFocus />
      </label>
      <label>
        Password
        <input name="password" type="password" autoComplete="current-password" required />
      </label>
      <button type="submit" disabled={busy}>
        {busy ? "Logging in…" : "Log in"}
      </button>
      {error && (
        <p role="alert" className="error">
          {error}
        </p>
      )}
    </form>
  );
}
