import type { Metadata } from "next";
import { redirect } from "next/navigation";
import { currentPrincipal } from "@/server/page-data";
import { SignInForm } from "@/components/sign-in-form";

export const metadata: Metadata = { title: "Sign in" };
export const dynamic = "force-dynamic";

export default async function SignInPage() {
  if ((await currentPrincipal()) !== null) redirect("/vms");
  return (
    <main className="signin">
      <div className="panel">
        <h1>Virga</h1>
        <SignInForm />
      </div>
    </main>
  );
}
