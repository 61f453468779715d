// "Проверить" on a webhook's form: one signed `test` event sent now by the API
// (POST …/webhooks/{id}/test, docs/webhooks.md) and the CRM's answer shown as it came.
import { Alert, Button, Group, Stack, Text } from "@mantine/core";
import { useState } from "react";
import { http, type Schemas } from "../api/client";
import { useMe } from "../auth";
import { collectionPath } from "../crud/resource";
import { useText } from "../crud/text";
import type { TabProps } from "../crud/types";
import { can } from "../rights";

type Answer = Schemas["TestDelivery"];

function Outcome({ answer }: { answer: Answer }) {
  const text = useText();
  const status = answer.status === null ? "" : ` HTTP ${answer.status}`;
  return answer.ok ? (
    <Alert color="green" title={text(["Доставлено", "Delivered"])} data-testid="webhook-test-result">
      {text(["Ответ CRM:", "The CRM answered:"])}
      {status}
    </Alert>
  ) : (
    <Alert color="red" title={text(["Не доставлено", "Not delivered"])} data-testid="webhook-test-result">
      {status && <Text size="sm">{text(["Ответ CRM:", "The CRM answered:"]) + status}</Text>}
      {answer.error && <Text size="sm">{answer.error}</Text>}
    </Alert>
  );
}

export function WebhookTest({ clientId, row }: TabProps) {
  const text = useText();
  const me = useMe();
  const [answer, setAnswer] = useState<Answer | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  // The server asks for the right to change the webhook (it signs with the stored secret).
  if (!can(me, "client_config", "update")) return null;
  const run = async () => {
    setBusy(true);
    setAnswer(null);
    setError(null);
    try {
      setAnswer(await http<Answer>("POST", `${collectionPath("webhooks", "client", clientId)}/${row.id}/test`));
    } catch (err) {
      setError(err instanceof Error ? err.message : String(err));
    } finally {
      setBusy(false);
    }
  };
  return (
    <Stack mt="md" gap="xs">
      <Group>
        <Button variant="light" loading={busy} onClick={() => void run()}>
          {text(["Проверить", "Test"])}
        </Button>
        <Text size="sm" c="dimmed">
          {text(["Отправить тестовое событие на сохранённый адрес с сохранённым секретом", "Send a test event to the saved URL with the saved secret"])}
        </Text>
      </Group>
      {answer && <Outcome answer={answer} />}
      {error && <Alert color="red">{error}</Alert>}
    </Stack>
  );
}
