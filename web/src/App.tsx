// Routes: provider sections at /<section>, a client's sections at /clients/<id>/<section>;
// everything is behind the login page.
import { Alert, Center, Loader } from "@mantine/core";
import { useTranslation } from "react-i18next";
import { BrowserRouter, Navigate, Route, Routes, useParams } from "react-router-dom";
import { useAuth, useMe } from "./auth";
import { ResourceForm } from "./crud/ResourceForm";
import { ResourceList } from "./crud/ResourceList";
import { Shell } from "./layout/Shell";
import { CallDialplanPage, NumberDialplanPage } from "./dialplan/DialplanPage";
import { ActiveCallsPage } from "./pages/ActiveCalls";
import { AuditPage } from "./pages/Audit";
import { CallsPage } from "./pages/Calls";
import { StatisticsPage } from "./pages/Statistics";
import { ClientHomePage, HomePage } from "./pages/Home";
import { LoginPage } from "./pages/Login";
import { isProvider } from "./rights";
import { CLIENT_SECTIONS, GLOBAL_SECTIONS } from "./sections";

function NotFound() {
  const { t } = useTranslation();
  return <Alert color="yellow">{t("common.notFound")}</Alert>;
}

/** The client id of the route; client staff are kept inside their own client. */
function useClientId(): number | null | "foreign" {
  const me = useMe();
  const { clientId } = useParams();
  if (clientId === undefined) return null;
  const id = Number(clientId);
  if (!isProvider(me) && id !== me.client_id) return "foreign";
  return id;
}

type Mode = "home" | "list" | "new" | "edit" | "dialplan";

/** Pages of their own (not generic sections): call detail, statistics, active calls. */
function customPage(key: string | undefined, clientId: number) {
  if (key === "calls") return <CallsPage clientId={clientId} />;
  if (key === "statistics") return <StatisticsPage clientId={clientId} />;
  if (key === "active-calls") return <ActiveCallsPage clientId={clientId} />;
  if (key === "audit") return <AuditPage key={clientId} clientId={clientId} />;
  return null;
}

/** DP-1: a number's dialplan editor; DP-7: a recorded call's path on its dialplan. */
function dialplanPage(key: string | undefined, clientId: number, id: number) {
  if (key === "internal-numbers" || key === "external-numbers") return <NumberDialplanPage key={`${key}/${id}`} clientId={clientId} kind={key} numberId={id} />;
  if (key === "calls") return <CallDialplanPage key={id} clientId={clientId} callId={id} />;
  return null;
}

function ClientRoute({ mode }: { mode: Mode }) {
  const me = useMe();
  const clientId = useClientId();
  const { section: key, id } = useParams();
  if (clientId === "foreign" || clientId === null) return <Navigate to={`/clients/${me.client_id}/home`} replace />;
  const section = key ? CLIENT_SECTIONS[key] : undefined;
  let page;
  if (mode === "home") page = isProvider(me) ? <ClientHomePage clientId={clientId} /> : <HomePage />;
  else if (mode === "list" && customPage(key, clientId)) page = customPage(key, clientId);
  else if (mode === "dialplan") page = dialplanPage(key, clientId, Number(id)) ?? <NotFound />;
  else if (!section) page = <NotFound />;
  else if (mode === "list") page = <ResourceList key={`${clientId}/${key}`} section={section} clientId={clientId} />;
  else page = <ResourceForm key={`${clientId}/${key}/${id}`} section={section} clientId={clientId} id={mode === "edit" ? id : undefined} />;
  return <Shell clientId={clientId}>{page}</Shell>;
}

function GlobalRoute({ mode }: { mode: Exclude<Mode, "dialplan"> }) {
  const { section: key, id } = useParams();
  const section = key ? GLOBAL_SECTIONS[key] : undefined;
  let page;
  if (mode === "home") page = <HomePage />;
  else if (mode === "list" && key === "audit") page = <AuditPage clientId={null} />;
  else if (!section) page = <NotFound />;
  else if (mode === "list") page = <ResourceList key={key} section={section} clientId={null} />;
  else page = <ResourceForm key={`${key}/${id}`} section={section} clientId={null} id={mode === "edit" ? id : undefined} />;
  return <Shell clientId={null}>{page}</Shell>;
}

function Gate() {
  const { me, loading } = useAuth();
  const { t } = useTranslation();
  if (loading)
    return (
      <Center mih="100vh">
        <Loader aria-label={t("common.loading")} />
      </Center>
    );
  if (!me) return <LoginPage />;
  return (
    <Routes>
      <Route path="/" element={<GlobalRoute mode="home" />} />
      <Route path="/clients/:clientId/home" element={<ClientRoute mode="home" />} />
      <Route path="/clients/:clientId/:section" element={<ClientRoute mode="list" />} />
      <Route path="/clients/:clientId/:section/new" element={<ClientRoute mode="new" />} />
      <Route path="/clients/:clientId/:section/:id" element={<ClientRoute mode="edit" />} />
      <Route path="/clients/:clientId/:section/:id/dialplan" element={<ClientRoute mode="dialplan" />} />
      <Route path="/:section" element={<GlobalRoute mode="list" />} />
      <Route path="/:section/new" element={<GlobalRoute mode="new" />} />
      <Route path="/:section/:id" element={<GlobalRoute mode="edit" />} />
      <Route path="*" element={<Shell clientId={null}><NotFound /></Shell>} />
    </Routes>
  );
}

export function App() {
  return (
    <BrowserRouter>
      <Gate />
    </BrowserRouter>
  );
}
