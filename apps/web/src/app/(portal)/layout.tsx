import type { ReactNode } from "react";
import { requirePrincipal } from "@/server/page-data";
import { Nav } from "@/components/nav";

export const dynamic = "force-dynamic";

export default async function PortalLayout({ children }: { children: ReactNode }) {
  const principal = await requirePrincipal();
  return (
    <div className="shell">
      <Nav username={principal.username} role={principal.role} />
      <main className="main">{children}</main>
    </div>
  );
}
