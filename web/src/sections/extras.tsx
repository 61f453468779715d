// Section parts that are more than fields: a port's SIP password, a media file's audio
// (upload with progress, play in the browser), a campaign's start/stop.
import { Alert, Badge, Button, Code, FileButton, Group, Progress, Stack, Text } from "@mantine/core";
import { notifications } from "@mantine/notifications";
import { useState } from "react";
import { useTranslation } from "react-i18next";
import { ApiError, http, upload, type Schemas } from "../api/client";
import { useMe } from "../auth";
import { collectionPath, useInvalidate } from "../crud/resource";
import { useText } from "../crud/text";
import type { Row, TabProps } from "../crud/types";
import { can } from "../rights";

export function PortSecret({ clientId, row }: TabProps) {
  const { t } = useTranslation();
  const text = useText();
  const [secret, setSecret] = useState<Schemas["PortSecretRead"] | null>(null);
  const [error, setError] = useState<string | null>(null);
  const show = async () => {
    try {
      setSecret(await http<Schemas["PortSecretRead"]>("GET", `/clients/${clientId}/ports/${row.id}/secret`));
    } catch (err) {
      setError(err instanceof Error ? err.message : String(err));
    }
  };
  return (
    <Group mt="md">
      {secret ? (
        <Text size="sm">
          {text(["Учётная запись телефона", "Phone account"])}: <Code>{secret.sip_login}</Code> / <Code>{secret.sip_secret}</Code> (realm{" "}
          <Code>{secret.realm}</Code>)
        </Text>
      ) : (
        <Button variant="subtle" size="compact-sm" onClick={() => void show()}>
          {t("f.sip_secret")}: {t("actions.show")}
        </Button>
      )}
      {error && <Text c="red" size="sm">{error}</Text>}
    </Group>
  );
}

export function MediaAudioTab({ clientId, row }: TabProps) {
  const { t } = useTranslation();
  const me = useMe();
  const invalidate = useInvalidate();
  const path = collectionPath("media-files", "client", clientId);
  const [progress, setProgress] = useState<number | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [current, setCurrent] = useState<Row>(row);
  const send = async (file: File | null) => {
    if (!file) return;
    setError(null);
    setProgress(0);
    try {
      const saved = await upload<Row>(`${path}/${row.id}/audio`, file, setProgress);
      setCurrent(saved);
      await invalidate(path);
      notifications.show({ message: t("common.saved"), color: "green" });
    } catch (err) {
      setError(err instanceof ApiError ? err.message : String(err));
    } finally {
      setProgress(null);
    }
  };
  const hasAudio = current.size_bytes !== null && current.size_bytes !== undefined;
  return (
    <Stack>
      {hasAudio ? (
        <audio controls preload="none" aria-label={String(current.name)} src={`/api/v1${path}/${row.id}/audio?v=${current.sha256}`} />
      ) : (
        <Text c="dimmed">{t("common.noAudio")}</Text>
      )}
      {can(me, "client_config", "update") && (
        <FileButton onChange={(f) => void send(f)} accept="audio/*,.wav,.mp3,.ogg,.flac">
          {(props) => (
            <Button {...props} variant="light" w="fit-content" loading={progress !== null}>
              {t("actions.upload")}
            </Button>
          )}
        </FileButton>
      )}
      {progress !== null && (
        <Stack gap={4}>
          <Progress value={progress * 100} aria-label={t("common.uploading", { percent: Math.round(progress * 100) })} />
          <Text size="xs">{t("common.uploading", { percent: Math.round(progress * 100) })}</Text>
        </Stack>
      )}
      {error && <Alert color="red">{error}</Alert>}
    </Stack>
  );
}

const STATUS_COLOR: Record<string, string> = { blocked: "gray", active: "green", finished: "blue" };

export function CampaignControls({ clientId, row }: TabProps) {
  const text = useText();
  const me = useMe();
  const invalidate = useInvalidate();
  const path = collectionPath("campaigns", "client", clientId);
  const [status, setStatus] = useState(String(row.status));
  const [error, setError] = useState<string | null>(null);
  const act = async (action: "start" | "stop") => {
    setError(null);
    try {
      const saved = await http<Row>("POST", `${path}/${row.id}/${action}`);
      setStatus(String(saved.status));
      await invalidate(path);
    } catch (err) {
      setError(err instanceof Error ? err.message : String(err));
    }
  };
  const labels: Record<string, readonly [string, string]> = {
    blocked: ["Заблокирована", "Blocked"],
    active: ["Активна", "Active"],
    finished: ["Завершена", "Finished"],
  };
  const allowed = can(me, "campaigns", "update");
  return (
    <Group mt="md">
      <Badge color={STATUS_COLOR[status] ?? "gray"}>{text(labels[status] ?? [status, status])}</Badge>
      {allowed && status === "blocked" && (
        <Button size="compact-sm" onClick={() => void act("start")}>
          {text(["Запустить", "Start"])}
        </Button>
      )}
      {allowed && status === "active" && (
        <Button size="compact-sm" variant="light" onClick={() => void act("stop")}>
          {text(["Остановить", "Stop"])}
        </Button>
      )}
      {error && <Text c="red" size="sm">{error}</Text>}
    </Group>
  );
}
