"use client";
import { useEffect } from "react";
import { useRouter } from "next/navigation";

export default function Home() {
  const router = useRouter();
  useEffect(() => router.replace("/fleet/"), [router]);
  return <p className="muted">Opening the fleet…</p>;
}
