package sparkvision.jvm;

import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;

import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.hdfs.DFSClient;
import org.apache.hadoop.hdfs.DistributedFileSystem;
import org.apache.hadoop.hdfs.protocol.DirectoryListing;
import org.apache.hadoop.hdfs.protocol.HdfsFileStatus;
import org.apache.hadoop.hdfs.protocol.HdfsLocatedFileStatus;
import org.apache.hadoop.hdfs.protocol.LocatedBlocks;
import org.apache.hadoop.security.UserGroupInformation;

/**
 * Opens many small HDFS files of one folder with one NameNode call per listing page instead of one per file.
 *
 * <p>Opening an HDFS file asks the NameNode where its blocks are ({@code getBlockLocations}); for a file of a
 * few hundred bytes that call costs more client and NameNode CPU than the read. A directory listing with
 * locations returns the same answer for many files at once (a page holds up to {@code dfs.ls.limit}, 1,000, block
 * locations: 500 one-block files at 2 replicas). {@link #remember} lists the window of a folder that holds a
 * batch's names (unless the caller's last listing holds them) and keeps their block locations; {@link #open}
 * opens a remembered file with them (the NameNode is asked only for a file the window did not hold: one removed
 * since the drop's listing gets its {@code FileNotFoundException} as before, and so does a name the listing
 * sorts elsewhere). A block that cannot be read with the remembered locations is looked up again by the client,
 * as for any open file. {@link #forget} drops what a batch did not open.
 *
 * <p>Used on HDFS without Kerberos only: a listing carries no block access tokens, which a secure cluster asks
 * for on every read.
 */
final class ListedBlocks {
  private static final ConcurrentHashMap<String, ListedBlocks> CLIENTS = new ConcurrentHashMap<>();

  private final Client client;
  private final LocalReplicas replicas;

  private ListedBlocks(Client client, Configuration conf) {
    this.client = client;
    this.replicas = new LocalReplicas(conf);
  }

  /** The JVM's opener for {@code fs} and the current user, or null where it does not apply. */
  static ListedBlocks of(FileSystem fs, Configuration conf) throws IOException {
    if (!(fs instanceof DistributedFileSystem) || UserGroupInformation.isSecurityEnabled()) {
      return null;
    }
    URI uri = fs.getUri();
    String key = uri + " " + UserGroupInformation.getCurrentUser().getShortUserName();
    try {
      return CLIENTS.computeIfAbsent(key, k -> {
        try {
          return new ListedBlocks(new Client(uri, conf), conf);
        } catch (IOException e) {
          throw new UncheckedIOException(e);
        }
      });
    } catch (UncheckedIOException e) {
      throw e.getCause();
    }
  }

  /**
   * Remember the block locations of {@code names} (sorted, in {@code folder}, a path without scheme), adding their
   * paths to {@code remembered} (for {@link #forget}). Names that {@code window} (what the caller listed last)
   * holds are taken from it; else the folder is listed with locations from the first name it lacks on, until
   * every one of them was seen, the folder ends, or twice as many entries as names plus one page went by, and
   * that listing becomes the window. A listing page holds up to {@code dfs.ls.limit} (1,000) block locations: the
   * next batches of a task's sorted range are mostly in the page its first batch listed, so a page is listed and
   * parsed once, not once per batch.
   */
  void remember(String folder, List<String> names, List<String> remembered, Window window) throws IOException {
    List<String> missing = new ArrayList<>();
    for (String name : names) {
      LocatedBlocks blocks = folder.equals(window.folder) ? window.blocks.get(name) : null;
      if (blocks != null) {
        keep(folder + "/" + name, blocks, remembered);
      } else {
        missing.add(name);
      }
    }
    if (missing.isEmpty()) {
      return;
    }
    window.folder = folder;
    window.blocks.clear();
    Set<String> wanted = new HashSet<>(missing);
    String first = missing.get(0);
    // the first name without its last character sorts just before it: the listing starts at the first name
    byte[] after =
        first.length() > 1
            ? first.substring(0, first.length() - 1).getBytes(StandardCharsets.UTF_8)
            : HdfsFileStatus.EMPTY_NAME;
    long seen = 0;
    DirectoryListing page = client.listPaths(folder, after, true);
    while (page != null) {
      for (HdfsFileStatus status : page.getPartialListing()) {
        seen++;
        String name = status.getLocalName();
        if (status instanceof HdfsLocatedFileStatus located && status.isFile() && located.getLocatedBlocks() != null) {
          // a file only (a folder or link of the same name is opened by name, and says what it is)
          window.blocks.put(name, located.getLocatedBlocks());
          if (wanted.remove(name)) {
            keep(folder + "/" + name, located.getLocatedBlocks(), remembered);
          }
        }
      }
      if (wanted.isEmpty() || !page.hasMore() || seen > 2L * missing.size() + page.getPartialListing().length) {
        break;
      }
      page = client.listPaths(folder, page.getLastName(), true);
    }
  }

  private void keep(String src, LocatedBlocks blocks, List<String> remembered) {
    client.listed.put(src, blocks);
    remembered.add(src);
  }

  /**
   * What one reader listed last: the files of one listing of a folder and their block locations (one task's,
   * at most a few pages: its memory does not grow with the drop).
   */
  static final class Window {
    private String folder;
    private final Map<String, LocatedBlocks> blocks = new HashMap<>();
  }

  /** Open {@code src} (a path without scheme), with its remembered locations if it has them. */
  InputStream open(String src, int bufferSize) throws IOException {
    return client.createWrappedInputStream(client.open(src, bufferSize, true));
  }

  /**
   * The bytes of remembered {@code src} read from a DataNode on this host ({@link LocalReplicas}), or null where
   * that does not apply (not remembered, over {@code maxBytes}, not a local single-block file, any error).
   */
  byte[] readLocal(String src, long maxBytes) {
    LocatedBlocks blocks = client.listed.get(src);
    if (blocks == null || blocks.getFileLength() > maxBytes) {
      return null;
    }
    byte[] data = replicas.read(src, blocks);
    if (data != null) {
      client.listed.remove(src);
    }
    return data;
  }

  /** Drop the remembered locations of {@code srcs} that were not opened. */
  void forget(List<String> srcs) {
    for (String src : srcs) {
      client.listed.remove(src);
    }
  }

  /** A DFSClient whose first lookup of a remembered file's blocks is answered from the listing. */
  private static final class Client extends DFSClient {
    final ConcurrentHashMap<String, LocatedBlocks> listed = new ConcurrentHashMap<>();

    Client(URI uri, Configuration conf) throws IOException {
      super(uri, conf);
    }

    @Override
    public LocatedBlocks getLocatedBlocks(String src, long start) throws IOException {
      LocatedBlocks blocks = start == 0 ? listed.remove(src) : null;
      return blocks != null ? blocks : super.getLocatedBlocks(src, start);
    }
  }
}
