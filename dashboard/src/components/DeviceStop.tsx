"use client";
import { useState } from "react";
import { api, errorText, type Device } from "@/api/client";

/** One device's STOP: sent at once, the hub's command status shown beside it. */
export function DeviceStop({ device }: { device: Pick<Device, "id" | "name"> }) {
  const [status, setStatus] = useState("");
  const stop = async () => {
    setStatus("sending…");
    const { data, error } = await api.POST("/api/v1/devices/{device_id}/estop", {
      params: { path: { device_id: device.id } },
      body: { reason: "dashboard stop" },
    });
    setStatus(data ? `stop ${data.status}` : `failed: ${errorText(error)}`);
  };
  return (
    <span className="device-stop">
      <button type="button" className="stop" aria-label={`STOP ${device.name}`} onClick={() => void stop()}>
        STOP
      </button>
      <span role="status" aria-live="polite" className="small">
        {status}
      </span>
    </span>
  );
}
