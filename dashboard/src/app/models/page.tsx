"use client";
import { useCallback, useEffect, useState, type FormEvent } from "react";
import { api, can, errorText, type Schemas } from "@/api/client";
import { useAuth } from "@/lib/auth";

type Model = Schemas["ModelOut"];
type Rollout = Schemas["RolloutOut"];
type RolloutDetail = Schemas["RolloutDetail"];

export default function ModelsPage() {
  const { principal } = useAuth();
  const admin = can(principal, "admin");
  const [models, setModels] = useState<Model[]>([]);
  const [card, setCard] = useState<Schemas["ModelDetail"] | null>(null);
  const [rollouts, setRollouts] = useState<Rollout[]>([]);
  const [details, setDetails] = useState<Record<number, RolloutDetail>>({});
  const [message, setMessage] = useState("");

  const load = useCallback(async () => {
    const [{ data: m }, { data: r }] = await Promise.all([api.GET("/api/v1/models"), api.GET("/api/v1/rollouts")]);
    setModels(m?.items ?? []);
    setRollouts(r?.items ?? []);
    const open = (r?.items ?? []).filter((x) => x.state !== "completed" && x.state !== "rolled_back").slice(0, 10);
    const got = await Promise.all(open.map((x) => api.GET("/api/v1/rollouts/{rollout_id}", { params: { path: { rollout_id: x.id } } })));
    setDetails(Object.fromEntries(got.flatMap(({ data }) => (data ? [[data.id, data]] : []))));
  }, []);
  useEffect(() => {
    void load();
    const t = setInterval(() => void load(), 10_000);
    return () => clearInterval(t);
  }, [load]);

  const showCard = (m: Model) =>
    void api.GET("/api/v1/models/{name}/versions/{version}", { params: { path: { name: m.name, version: m.version } } }).then(({ data }) => setCard(data ?? null));

  const promote = async (r: Rollout) => {
    const { error } = await api.POST("/api/v1/rollouts/{rollout_id}/promote", { params: { path: { rollout_id: r.id } } });
    setMessage(error ? `Promote failed: ${errorText(error)}` : `Rollout ${r.id} promoted.`);
    await load();
  };
  const rollback = async (r: Rollout) => {
    const reason = window.prompt(`Why roll back ${r.name} v${r.version}?`);
    if (reason === null) return;
    const { error } = await api.POST("/api/v1/rollouts/{rollout_id}/rollback", { params: { path: { rollout_id: r.id } }, body: { reason } });
    setMessage(error ? `Rollback failed: ${errorText(error)}` : `Rollout ${r.id} rolled back.`);
    await load();
  };
  const start = async (event: FormEvent<HTMLFormElement>) => {
    event.preventDefault();
    const form = new FormData(event.currentTarget);
    const [name, version] = String(form.get("model")).split("@");
    const site = String(form.get("site") ?? "").trim();
    const { error } = await api.POST("/api/v1/rollouts", {
      body: {
        name: name ?? "",
        version: version ?? "",
        target: { site: site || null },
        canary_percent: Number(form.get("canary")),
        auto_promote: form.get("auto") === "on",
      },
    });
    setMessage(error ? `Rollout not started: ${errorText(error)}` : "Rollout started.");
    await load();
  };

  return (
    <div className="page">
      <h1>Models</h1>
      <p role="status">{message}</p>
      <section className="card" aria-labelledby="versions-title">
        <h2 id="versions-title">Versions</h2>
        <table>
          <thead>
            <tr>
              <th>Model</th>
              <th>Classes</th>
              <th>Input</th>
              <th>Size</th>
              <th>Pushed</th>
              <th>Card</th>
            </tr>
          </thead>
          <tbody>
            {models.map((m) => (
              <tr key={`${m.name}@${m.version}`}>
                <td>
                  {m.name} v{m.version}
                  <div className="muted small">{m.sha256.slice(0, 12)}</div>
                </td>
                <td>{m.classes.join(", ")}</td>
                <td>{m.input_size.join("×")}</td>
                <td>{(m.size / 1e6).toFixed(1)} MB</td>
                <td>
                  {new Date(m.created_at).toLocaleString()} by {m.created_by}
                </td>
                <td>
                  <button type="button" onClick={() => showCard(m)}>
                    Show card
                  </button>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
        {models.length === 0 && <p className="muted">No model pushed yet (`outpost model push`).</p>}
        {card && (
          <div className="model-card">
            <h3>
              Card: {card.name} v{card.version}
            </h3>
            <pre>{JSON.stringify(card.card, null, 2)}</pre>
          </div>
        )}
      </section>
      <section className="card" aria-labelledby="rollouts-title">
        <h2 id="rollouts-title">Rollouts</h2>
        <table>
          <thead>
            <tr>
              <th>Model</th>
              <th>Target</th>
              <th>State</th>
              <th>Canary progress</th>
              {admin && <th>Actions</th>}
            </tr>
          </thead>
          <tbody>
            {rollouts.map((r) => {
              const d = details[r.id];
              const canary = d?.devices.filter((x) => x.canary) ?? [];
              const active = canary.filter((x) => x.status === "active").length;
              const open = r.state !== "completed" && r.state !== "rolled_back";
              return (
                <tr key={r.id}>
                  <td>
                    #{r.id} {r.name} v{r.version}
                  </td>
                  <td>
                    <code>{JSON.stringify(r.target)}</code>
                  </td>
                  <td>
                    {r.state}
                    {r.reason ? `: ${r.reason}` : ""}
                  </td>
                  <td>
                    {d ? (
                      <>
                        <progress max={Math.max(1, canary.length)} value={active} aria-label={`Canary ${active} of ${canary.length} active`} />{" "}
                        {active}/{canary.length} canary active ({r.canary_percent}% of {d.devices.length})
                      </>
                    ) : (
                      `${r.canary_percent}% canary`
                    )}
                  </td>
                  {admin && (
                    <td>
                      {open && r.state !== "promoted" && (
                        <button type="button" onClick={() => void promote(r)}>
                          Promote
                        </button>
                      )}
                      {open && (
                        <button type="button" onClick={() => void rollback(r)}>
                          Roll back
                        </button>
                      )}
                    </td>
                  )}
                </tr>
              );
            })}
          </tbody>
        </table>
        {rollouts.length === 0 && <p className="muted">No rollouts.</p>}
        {admin && models.length > 0 && (
          <form className="row" onSubmit={(e) => void start(e)}>
            <label>
              Model{" "}
              <select name="model">
                {models.map((m) => (
                  <option key={`${m.name}@${m.version}`} value={`${m.name}@${m.version}`}>
                    {m.name} v{m.version}
                  </option>
                ))}
              </select>
            </label>
            <label>
              Site (empty: fleet) <input name="site" />
            </label>
            <label>
              Canary % <input name="canary" type="number" min={1} max={100} defaultValue={10} />
            </label>
            <label>
              <input name="auto" type="checkbox" /> auto-promote
            </label>
            <button type="submit">Start rollout</button>
          </form>
        )}
      </section>
    </div>
  );
}
