"use client";
// Fleet-wide and site-wide STOP: always in the header for operators, real buttons, no confirm
// step (stopping is always safe), and the hub's answer (how many robots were sent a stop) shown.
import { useEffect, useState } from "react";
import { api, errorText, type Schemas } from "@/api/client";

export function StopBar() {
  const [sites, setSites] = useState<Schemas["SiteOut"][]>([]);
  const [site, setSite] = useState("");
  const [result, setResult] = useState("");

  useEffect(() => {
    void api.GET("/api/v1/sites").then(({ data }) => {
      setSites(data ?? []);
      setSite((current) => current || data?.[0]?.id || "");
    });
  }, []);

  const stopFleet = async () => {
    setResult("Stopping the fleet…");
    const { data, error } = await api.POST("/api/v1/fleet/estop", { body: { reason: "dashboard fleet stop" } });
    setResult(data ? `Fleet stop sent to ${data.count} device(s)` : `Fleet stop failed: ${errorText(error)}`);
  };
  const stopSite = async () => {
    if (!site) return;
    setResult(`Stopping site ${site}…`);
    const { data, error } = await api.POST("/api/v1/sites/{site_id}/estop", {
      params: { path: { site_id: site } },
      body: { reason: "dashboard site stop" },
    });
    setResult(data ? `Site ${site} stop sent to ${data.count} device(s)` : `Site stop failed: ${errorText(error)}`);
  };

  return (
    <div className="stopbar">
      <button type="button" className="stop" aria-label="STOP fleet: stop every robot" onClick={() => void stopFleet()}>
        STOP fleet
      </button>
      <label className="sr-only" htmlFor="stop-site">
        Site to stop
      </label>
      <select id="stop-site" value={site} onChange={(e) => setSite(e.target.value)}>
        {sites.map((s) => (
          <option key={s.id} value={s.id}>
            {s.name}
          </option>
        ))}
      </select>
      <button
        type="button"
        className="stop"
        aria-label={`STOP site ${site}`}
        disabled={!site}
        onClick={() => void stopSite()}
      >
        STOP site
      </button>
      <span role="status" aria-live="polite" className="stop-result">
        {result}
      </span>
    </div>
  );
}
