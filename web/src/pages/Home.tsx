// The personal cabinet's front page: who you are, at which level, and your sections (ADM-1).
import { Card, SimpleGrid, Stack, Text, Title } from "@mantine/core";
import { useTranslation } from "react-i18next";
import { Link } from "react-router-dom";
import { useMe } from "../auth";
import { useItem } from "../crud/resource";
import { useText } from "../crud/text";
import { CLIENT_MENU, PROVIDER_MENU, visibleMenu, type MenuItem } from "../menu";
import { isProvider } from "../rights";

function leaves(items: MenuItem[]): MenuItem[] {
  return items.flatMap((i) => (i.children ? leaves(i.children) : [i]));
}

function SectionCards({ items, base }: { items: MenuItem[]; base: string }) {
  const text = useText();
  return (
    <SimpleGrid cols={{ base: 1, xs: 2, md: 3 }}>
      {leaves(items).map((item) => (
        <Card key={item.key} withBorder component={Link} to={`${base}/${item.key}`} padding="md">
          <Text fw={500}>{text(item.label)}</Text>
        </Card>
      ))}
    </SimpleGrid>
  );
}

export function HomePage() {
  const me = useMe();
  const { t } = useTranslation();
  const provider = isProvider(me);
  const items = provider ? visibleMenu(me, PROVIDER_MENU, "global") : visibleMenu(me, CLIENT_MENU, "client");
  const base = provider ? "" : `/clients/${me.client_id}`;
  return (
    <Stack>
      <Title order={2}>
        {t("app.cabinet")}: {t(`levels.${me.level}`)}
      </Title>
      <Text>{t("common.welcome", { name: me.full_name || me.login })}</Text>
      <Title order={4}>{t("common.yourSections")}</Title>
      <SectionCards items={items} base={base} />
    </Stack>
  );
}

/** A client's sections as provider staff see them after choosing the client. */
export function ClientHomePage({ clientId }: { clientId: number }) {
  const me = useMe();
  const { t } = useTranslation();
  const client = useItem("/clients", String(clientId));
  return (
    <Stack>
      <Title order={2}>
        {t("menu.client")}: {client.data ? String(client.data.name) : `#${clientId}`}
      </Title>
      <SectionCards items={visibleMenu(me, CLIENT_MENU, "client")} base={`/clients/${clientId}`} />
    </Stack>
  );
}
