"use client";
import { useMutation } from "@tanstack/react-query";
import Link from "next/link";
import { usePathname, useRouter } from "next/navigation";
import { useTRPC } from "@/lib/trpc";

const LINKS = [
  { href: "/vms", label: "Virtual machines" },
  { href: "/definitions", label: "Definitions" },
  { href: "/templates", label: "Templates" },
  { href: "/migrations", label: "Migrations" },
  { href: "/hosts", label: "Hosts" },
  { href: "/audit", label: "Audit log", role: "operator" },
  { href: "/tokens", label: "API tokens" },
  { href: "/users", label: "Users", role: "admin" },
] as const;

const RANK = { viewer: 0, operator: 1, admin: 2 } as const;

export function Nav({
  username,
  role,
}: {
  username: string;
  role: "viewer" | "operator" | "admin";
}) {
  const pathname = usePathname();
  const router = useRouter();
  const trpc = useTRPC();
  const signOut = useMutation(
    trpc.auth.signOut.mutationOptions({
      onSettled: () => {
        router.replace("/sign-in");
        router.refresh();
      },
    }),
  );
  return (
    <nav className="nav" aria-label="Main">
      <div className="brand">Virga</div>
      {LINKS.filter((link) => !("role" in link) || RANK[role] >= RANK[link.role]).map((link) => (
        <Link
          key={link.href}
          href={link.href}
          className={pathname.startsWith(link.href) ? "active" : ""}
        >
          {link.label}
        </Link>
      ))}
      <div className="who">
        <div>
          <strong data-testid="who">{username}</strong> <span className="muted">({role})</span>
        </div>
        <button type="button" style={{ marginTop: 8 }} onClick={() => signOut.mutate()}>
          Sign out
        </button>
      </div>
    </nav>
  );
}
