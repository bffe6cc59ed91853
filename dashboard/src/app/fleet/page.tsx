"use client";
import Link from "next/link";
import { useMemo } from "react";
import { can } from "@/api/client";
import { DeviceStop } from "@/components/DeviceStop";
import { SiteMap, type MapRobot } from "@/components/SiteMap";
import { useAuth } from "@/lib/auth";
import { bufferText, isStopped, modelText, stateOf, stopText, useDevices } from "@/lib/devices";
import { useLive } from "@/lib/live";
import { layoutOf, useSites } from "@/lib/sites";
import { METRICS } from "@/lib/telemetry";

export default function FleetPage() {
  const { principal } = useAuth();
  const live = useLive();
  const { devices, error } = useDevices();
  const operator = can(principal, "operator");

  const robots: MapRobot[] = useMemo(
    () =>
      devices.flatMap((d) => {
        const pose = live.poses[d.id];
        if (!pose) return [];
        const state = stateOf(d, live.states);
        return [{ id: d.id, name: d.name, pose, stopped: isStopped(state), online: state.online === true, frame: live.frames[d.id] }];
      }),
    [devices, live.poses, live.states, live.frames],
  );
  const sites = useSites();
  // One map, one floor plan: each site has a frame of its own, so with several sites in scope
  // the map draws the plan of the first robot's site (devices come sorted by id).
  const firstSite = devices.find((d) => d.id === robots[0]?.id)?.site_id;
  const layout = layoutOf(sites, sites.length === 1 ? undefined : firstSite);

  return (
    <div className="page">
      <h1>Fleet</h1>
      <section className="card" aria-labelledby="map-title">
        <h2 id="map-title">Site map</h2>
        {robots.length === 0 ? <p className="muted">No robot has reported a position yet.</p> : null}
        <SiteMap robots={robots} layout={layout} />
        <p className="legend muted">
          ● robot (red: stopped, grey: offline) ▶ heading · <span className="person">●</span> person ·{" "}
          <span className="forklift">■</span> forklift (bearing from the camera, distance approximate)
          {layout && (
            <>
              {" "}
              · zones: <span className="zone-key danger">danger</span> <span className="zone-key keep_out">keep out</span>{" "}
              <span className="zone-key dock">dock</span> <span className="zone-key charging">charging</span>{" "}
              <span className="zone-key shelf">shelf</span>
            </>
          )}
        </p>
      </section>
      <section className="card" aria-labelledby="list-title">
        <h2 id="list-title">Devices</h2>
        {error && <p role="alert" className="error">{error}</p>}
        <table className="live-values" data-testid="device-table">
          <thead>
            <tr>
              <th>Device</th>
              <th>Site</th>
              <th>Online</th>
              <th>Stop state</th>
              <th>Battery</th>
              <th>Model</th>
              <th>Buffer</th>
              {operator && <th>Control</th>}
            </tr>
          </thead>
          <tbody>
            {devices.map((d) => {
              const state = stateOf(d, live.states);
              const battery = live.latest[d.id]?.[METRICS.battery];
              return (
                <tr key={d.id} data-device={d.id}>
                  <td>
                    <Link href={`/device/?id=${encodeURIComponent(d.id)}`}>{d.name}</Link>
                    <div className="muted small">{d.id} · {d.kind}</div>
                  </td>
                  <td>{d.site_id}</td>
                  <td data-testid="online">{state.online ? "online" : "offline"}</td>
                  <td data-testid="stop-state" className={isStopped(state) ? "stopped-text" : undefined}>
                    {stopText(state)}
                  </td>
                  <td>{battery ? `${battery.value.toFixed(0)} %` : "–"}</td>
                  <td>{modelText(state)}</td>
                  <td>{bufferText(state)}</td>
                  {operator && (
                    <td className="control">
                      <DeviceStop device={d} />
                    </td>
                  )}
                </tr>
              );
            })}
          </tbody>
        </table>
        {devices.length === 0 && !error && <p className="muted">No devices enrolled yet.</p>}
      </section>
    </div>
  );
}
